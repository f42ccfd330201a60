using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Scheduling;
using Serving.Engine.Tuning;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary>
/// <c>bench tuned</c>: single-stream decode with the device's tuning profile against the untuned defaults, in one run,
/// rounds alternating so that drift on a shared machine falls on both sides (docs/tuner.md). The profile is the cached
/// one, or measured first (fast mode unless <c>--full</c>) when there is none.
/// </summary>
internal static class BenchTunedCommand
{
    public static Command Create()
    {
        var command = new Command("tuned", "Decode tokens/s with the tuning profile against the untuned defaults, alternating rounds in one run");
        var model = ModelOption.Create();
        var tokens = new Option<int>("--tokens", "-n") { Description = "Tokens decoded per round", DefaultValueFactory = _ => 32 };
        var rounds = new Option<int>("--rounds", "-r") { Description = "Rounds; each runs the untuned and the tuned model once, in alternating order", DefaultValueFactory = _ => 3 };
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt text", DefaultValueFactory = _ => "Once upon a time" };
        var full = new Option<bool>("--full") { Description = "When there is no profile, tune in full mode instead of fast mode" };
        var json = new Option<string?>("--json") { Description = "Also write the results as JSON to this file" };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var kvType = CommonOptions.KvType();
        var noMmap = CommonOptions.NoMmap();
        foreach (var o in new Option[] { model, tokens, rounds, prompt, full, json, device, threads, kvType, noMmap }) command.Options.Add(o);
        command.SetAction(async (parse, cancel) =>
        {
            int n = parse.GetValue(tokens), r = parse.GetValue(rounds);
            if (n is < 2 or > 100_000) return CliErrors.Fail($"--tokens {n} out of range [2, 100000]");
            if (r is < 1 or > 100) return CliErrors.Fail($"--rounds {r} out of range [1, 100]");
            string path = ModelOption.Resolve(parse.GetValue(model));
            var registry = CommonOptions.Registry(parse);
            string? deviceId = parse.GetValue(device) ?? registry.DefaultDeviceId;
            if (deviceId is null) return CliErrors.Fail("no usable device (see `devices`)");
            var (plugin, descriptor, index) = registry.Find(deviceId);
            var options = new DeviceOptions(parse.GetValue(threads));
            var kv = CommonOptions.KvCacheType(parse, kvType);
            bool mmap = !parse.GetValue(noMmap);
            var key = DeviceTuning.KeyFor(plugin, descriptor, options, DeviceTuning.ShapeOf(path));
            var cache = ProfileCache.Default;
            var profile = DeviceTuning.Load(cache, key);
            if (profile is null or { Mode: Tuner.ScreenMode })
                profile = DeviceTuning.Measure(plugin, index, key, path, options, new TuneOptions { Fast = !parse.GetValue(full), KvCacheType = kv },
                    mmap, cache, $"tuning {descriptor.Id} ({(parse.GetValue(full) ? "full" : "fast")}: no profile yet)");
            var plan = KernelPlan.From(profile);

            using var accelerator = plugin.Plugin!.CreateDevice(index, options);
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"profile: {profile.Mode} tuning of {profile.CreatedUtc:yyyy-MM-dd HH:mm} UTC: {plan.NonDefaultCount(accelerator)} of {plan.Choices.Count} kernel choices not the default"));
            var untuned = new List<double>();
            var tunedRates = new List<double>();
            for (int round = 0; round < r; round++)
            {
                // Alternate which side goes first, so a trend in the machine's load (or in page-cache warmth) is shared.
                foreach (bool withProfile in round % 2 == 0 ? new[] { false, true } : [true, false])
                {
                    var modelOptions = new ModelOptions { MaxBatchSequences = 1, UseMmap = mmap, KvCacheType = kv, Kernels = withProfile ? plan : null };
                    double rate = await DecodeRate(path, accelerator, modelOptions, parse.GetValue(prompt)!, n, cancel);
                    (withProfile ? tunedRates : untuned).Add(rate);
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"round {round + 1}/{r} {(withProfile ? "tuned  " : "untuned")}: {rate:0.00} tok/s"));
                }
            }
            double u = Median(untuned), t = Median(tunedRates);
            var table = Tables.Create(["model", "device", "untuned", "tuned", "tuned ÷ untuned"], numeric: true);
            table.AddCells(Path.GetFileName(path), accelerator.Descriptor.Id, $"{u:0.00} tok/s", $"{t:0.00} tok/s", $"{t / u:0.00}×");
            Terminal.Out.WriteTable(table);
            Console.WriteLine($"medians of {r} alternating rounds of {n} decoded tokens; untuned {Join(untuned)}, tuned {Join(tunedRates)} tok/s");
            if (parse.GetValue(json) is { } jsonPath)
                File.WriteAllText(jsonPath, JsonSerializer.Serialize(new
                {
                    device = accelerator.Descriptor.Id,
                    deviceName = accelerator.Descriptor.Name,
                    file = Path.GetFileName(path),
                    tokens = n,
                    profileMode = profile.Mode,
                    nonDefaultKernels = plan.NonDefaultCount(accelerator),
                    kernelChoices = plan.Choices.Count,
                    untunedTokensPerSecond = untuned,
                    tunedTokensPerSecond = tunedRates,
                    untunedMedian = Math.Round(u, 3),
                    tunedMedian = Math.Round(t, 3),
                    ratio = Math.Round(t / u, 3),
                }, new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        });
        return command;
    }

    /// <summary>Loads the model with <paramref name="options"/>, warms it up, then decodes <paramref name="n"/> tokens greedily; returns tokens/s.</summary>
    private static async Task<double> DecodeRate(string path, IAccelerator accelerator, ModelOptions options, string prompt, int n, CancellationToken cancel)
    {
        using var lm = LoadedModel.Open(path, accelerator, options);
        int[] ids = lm.Tokenizer.Encode(prompt, lm.Tokenizer.AddBos);
        await using var scheduler = new Scheduler(lm.Model, new TokenizerDecoder(lm.Tokenizer, ignoreEndOfGeneration: true), new SchedulerOptions { MaxBatchSequences = 1 });
        await BenchCommand.GreedyRunAsync(scheduler, [.. ids.Reverse()], Math.Min(8, n), cancel); // warm-up: JIT, page faults
        var result = await BenchCommand.GreedyRunAsync(scheduler, ids, n, cancel);
        if (result.FinishReason == FinishReason.Error) throw new InvalidOperationException(result.Error?.Message ?? "decode failed");
        return 1 / (result.Usage.TimePerOutputToken?.TotalSeconds ?? double.NaN);
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string Join(List<double> values) => string.Join(" ", values.Select(v => v.ToString("0.00", CultureInfo.InvariantCulture)));
}
