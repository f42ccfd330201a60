using System.CommandLine;
using System.Globalization;
using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Tuning;
using Serving.Host.Cli;
using Serving.Host.Plugins;

namespace Serving.Host.Commands;

/// <summary>The device serve or generate runs on, and the tuning profile it runs with (null: untuned defaults).</summary>
/// <param name="DeviceId">backend:index, or null for the registry's default (the best-scored backend, as before the tuner).</param>
/// <param name="Profile">The profile, or null.</param>
internal sealed record TunedDevice(string? DeviceId, TuningProfile? Profile);

/// <summary>
/// How serve and generate use the tuner (docs/tuner.md): <c>--device auto</c> (the default) loads or measures a profile
/// for every device and runs on the one predicting the best decode tokens/s; an explicit <c>--device</c> opens exactly
/// that device, as before, and uses its cached profile when there is one; <c>--no-tune</c> uses no profile at all.
/// </summary>
internal static class DeviceTuning
{
    public const string Auto = "auto";

    /// <summary>--device for serve and generate: an id or auto.</summary>
    public static Option<string> Device() => new("--device", "-d")
    {
        Description = "Device id (backend:index, e.g. cpu:0), or auto: the device whose tuning profile predicts the best decode tokens/s " +
                      "for the model (profiles are measured on first use, then cached)",
        DefaultValueFactory = _ => Auto,
    };

    /// <summary>--no-tune: default kernels and limits.</summary>
    public static Option<bool> NoTune() => new("--no-tune")
    {
        Description = "Use no tuning profile (default kernels and batch limits); with --device auto, the best-scored backend runs",
    };

    /// <summary>--tpot-ms: per-token latency target.</summary>
    public static Option<double> TpotMs(string description) => new("--tpot-ms") { Description = description, DefaultValueFactory = _ => 0 };

    /// <summary>The profile key of device <paramref name="index"/> of <paramref name="plugin"/> for <paramref name="shape"/>.</summary>
    public static ProfileKey KeyFor(PluginEntry plugin, DeviceDescriptor device, DeviceOptions options, ModelShape shape) =>
        ProfileCache.KeyFor(device, plugin.Plugin!.GetType().Assembly, options, shape);

    /// <summary>Reads the shape of the model file (its hyper-parameters and weight types).</summary>
    public static ModelShape ShapeOf(string modelPath)
    {
        using var file = GgufFile.Open(modelPath);
        return ModelShape.FromGguf(file);
    }

    /// <summary>Resolves --device/--no-tune for serve and generate; says on stderr what it chose and why.</summary>
    public static TunedDevice Resolve(DeviceRegistry registry, string device, string modelPath, DeviceOptions options, bool noTune,
        DataType kvType, bool useMmap)
    {
        bool auto = string.Equals(device, Auto, StringComparison.OrdinalIgnoreCase);
        if (noTune)
        {
            if (auto && registry.DefaultDeviceId is { } best) Console.Error.WriteLine($"device auto: {best} (best-scored backend; --no-tune)");
            return new TunedDevice(auto ? null : device, null);
        }
        var cache = ProfileCache.Default;
        var shape = ShapeOf(modelPath);
        if (!auto)
        {
            var (plugin, descriptor, _) = registry.Find(device);
            var key = KeyFor(plugin, descriptor, options, shape);
            var profile = Load(cache, key);
            if (profile is { Mode: Tuner.ScreenMode }) profile = null; // a screening is a prediction, not a tuning
            if (profile is null)
                Console.Error.WriteLine($"tuning: no profile for {descriptor.Id} and this model in {cache.Folder}: default kernels and limits " +
                                        $"(`tune --device {descriptor.Id}` measures one; --device auto does on first use)");
            return new TunedDevice(descriptor.Id, profile);
        }

        // Auto: every device's profile, or a screening (one untuned batch-1 decode step) where it has none; then the
        // winner is tuned in fast mode if it was only screened, until the winner has a real profile.
        var tune = new TuneOptions { Fast = true, KvCacheType = kvType };
        var devices = new List<(PluginEntry Plugin, DeviceDescriptor Device, int Index, ProfileKey Key)>();
        var candidates = new List<DeviceCandidate>();
        foreach (var plugin in registry.Plugins.Where(p => p.Usable))
            for (int i = 0; i < plugin.Probe!.Devices.Count; i++)
            {
                var descriptor = plugin.Probe.Devices[i];
                var key = KeyFor(plugin, descriptor, options, shape);
                devices.Add((plugin, descriptor, i, key));
                candidates.Add(Attempt(descriptor.Id, () => Load(cache, key) ?? Screen(plugin, i, key, modelPath, options, tune, useMmap, cache)));
            }
        while (true)
        {
            var choice = DeviceChooser.Choose(candidates, out string reason);
            if (choice is null)
            {
                Console.Error.WriteLine($"device auto: {reason}; running on the best-scored backend, untuned");
                return new TunedDevice(null, null);
            }
            if (choice.Profile.Mode != Tuner.ScreenMode)
            {
                Console.Error.WriteLine($"device auto: {reason}");
                return new TunedDevice(choice.DeviceId, choice.Profile);
            }
            int at = candidates.FindIndex(c => c.DeviceId == choice.DeviceId);
            var (plugin, descriptor, index, key) = devices[at];
            Console.Error.WriteLine($"device auto: {reason}; tuning {descriptor.Id}");
            candidates[at] = Attempt(descriptor.Id, () => Measure(plugin, index, key, modelPath, options, tune, useMmap, cache, $"tuning {descriptor.Id} (fast, first use)"));
        }
    }

    private static DeviceCandidate Attempt(string deviceId, Func<TuningProfile> profile)
    {
        try
        {
            return new DeviceCandidate(deviceId, profile());
        }
        catch (Exception e) when (e is AcceleratorException or ArgumentException or InvalidOperationException or NotSupportedException
                                      or Engine.Models.ModelLoadException or OutOfMemoryException)
        {
            return new DeviceCandidate(deviceId, null, $"could not run the model ({e.Message})");
        }
    }

    /// <summary>Screens one device (<see cref="Tuner.Screen"/>) and caches the screening.</summary>
    private static TuningProfile Screen(PluginEntry plugin, int index, ProfileKey key, string modelPath, DeviceOptions options, TuneOptions tune,
        bool useMmap, ProfileCache cache)
    {
        using var accelerator = plugin.Plugin!.CreateDevice(index, options);
        var profile = ProgressBar.Run($"screening {key.DeviceId} (one decode step)", ProgressUnit.Items, _ => Tuner.Screen(accelerator, modelPath, key, tune, useMmap));
        TrySave(cache, profile);
        return profile;
    }

    private static string? TrySave(ProfileCache cache, TuningProfile profile)
    {
        try
        {
            return cache.Save(profile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"warning: could not save the tuning profile in {cache.Folder}: {e.Message}");
            return null;
        }
    }

    /// <summary>The cached profile for <paramref name="key"/>, with a warning on stderr for an ignored file.</summary>
    public static TuningProfile? Load(ProfileCache cache, ProfileKey key)
    {
        var profile = cache.TryLoad(key, out string? warning);
        if (warning is not null) Console.Error.WriteLine($"warning: {warning}");
        return profile;
    }

    /// <summary>Opens device <paramref name="index"/> of <paramref name="plugin"/>, tunes it with a progress bar, saves the profile.</summary>
    public static TuningProfile Measure(PluginEntry plugin, int index, ProfileKey key, string modelPath, DeviceOptions options, TuneOptions tune,
        bool useMmap, ProfileCache cache, string label)
    {
        using var accelerator = plugin.Plugin!.CreateDevice(index, options);
        var profile = ProgressBar.Run(label, ProgressUnit.Items, bar => Tuner.Tune(accelerator, modelPath, key, tune, new BarProgress(bar), useMmap));
        if (TrySave(cache, profile) is { } path)
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"tuned {key.DeviceId} in {profile.Seconds:0.0} s; profile saved to {path}"));
        return profile;
    }

    /// <summary>
    /// The batch limits to serve with: the profile's, or — with a TPOT target other than the one it was made with —
    /// its stored curves replayed under that target (<see cref="BatchSelector.Replay"/>).
    /// </summary>
    public static (int MaxBatch, int TokenBudget, string Reason) Limits(TuningProfile profile, double tpotMs)
    {
        var l = profile.Limits;
        if (tpotMs <= 0 || tpotMs == l.TpotTargetMs) return (l.MaxBatch, l.TokenBudget, l.BatchReason);
        var decode = BatchSelector.Replay(profile.DecodeCurve, new ClimbPolicy(1, int.MaxValue, "", tpotMs, 0.10, null));
        int chunk = l.TokenBudget - l.MaxBatch;
        if (profile.PrefillCurve.Count > 0)
            chunk = BatchSelector.Replay(profile.PrefillCurve, new ClimbPolicy(profile.PrefillCurve[0].Batch, int.MaxValue, "", tpotMs, 0.10, null, "chunk")).Chosen;
        int batch = Math.Min(decode.Chosen, l.MaxBatch);
        return (batch, batch + Math.Max(1, chunk), $"{decode.Reason} (replayed for --tpot-ms {tpotMs:0.#})");
    }

    /// <summary>One line on stderr: which profile runs, and what it sets.</summary>
    public static void Describe(TuningProfile profile, IAccelerator device, int maxBatch, int tokenBudget, string reason, bool batching)
    {
        var plan = KernelPlan.From(profile);
        string limits = batching ? string.Create(CultureInfo.InvariantCulture, $", max batch {maxBatch} ({reason}), token budget {tokenBudget}") : "";
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"profile: {profile.Mode} tuning of {profile.CreatedUtc:yyyy-MM-dd HH:mm} UTC ({ProfileCache.Default.PathFor(profile.Key)}): " +
            $"{plan.NonDefaultCount(device)} of {plan.Choices.Count} kernel choices not the default{limits}"));
        var unknown = plan.Unknown(device);
        if (unknown.Count > 0)
            Console.Error.WriteLine($"warning: the profile names variants {device.Descriptor.Id} does not have; their defaults run: {string.Join(", ", unknown)}");
    }

    /// <summary>Adapts the host's progress bar to the tuner's progress.</summary>
    public sealed class BarProgress(ProgressBar bar) : ITuneProgress
    {
        public void Report(long done, long total) => bar.Report((done, total));
        public void Status(string status) => bar.Status(status);
    }
}
