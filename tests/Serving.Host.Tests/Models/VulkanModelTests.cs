using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using Serving.Engine.Synthetic;
using Serving.Host.Plugins;
using Serving.Host.Tests.Interop;
using Serving.Host.Tests.Rpc;

namespace Serving.Host.Tests.Models;

/// <summary>Whether vulkan:0 exists here, asked of the Vulkan plugin's own probe (tests skip with its reason).</summary>
internal static class VulkanDevice
{
    private static readonly Lazy<string?> Why = new(() =>
    {
        var registry = DeviceRegistry.Discover(Path.Combine(AppContext.BaseDirectory, "plugins"));
        PluginEntry? vulkan = registry.Plugins.FirstOrDefault(p => string.Equals(p.Name, "vulkan", StringComparison.OrdinalIgnoreCase));
        if (vulkan is null) return "no Vulkan plugin in the plugins folder";
        return vulkan.Usable ? null : $"Vulkan cannot run here: {vulkan.Error ?? vulkan.Probe?.Reason}";
    });

    /// <summary>Ends the test as skipped, with the probe's reason, when there is no Vulkan device.</summary>
    public static void SkipUnlessPresent() => Skip.If(Why.Value is not null, Why.Value ?? "");

    /// <summary>What the probe says about vulkan:0 (DeviceDescriptor.Details: heaps, features used and lacked).</summary>
    public static IReadOnlyList<string> Details()
    {
        var registry = DeviceRegistry.Discover(Path.Combine(AppContext.BaseDirectory, "plugins"));
        PluginEntry vulkan = registry.Plugins.First(p => string.Equals(p.Name, "vulkan", StringComparison.OrdinalIgnoreCase));
        return vulkan.Probe?.Devices.FirstOrDefault()?.Details ?? [];
    }
}

/// <summary>
/// The whole model on vulkan:0 (lavapipe on the build machine; any Vulkan device elsewhere) against cpu:0, through the
/// commands a user runs: perplexity of the same files scores every token alike, and greedy generation gives the same
/// tokens. With the Khronos validation layer on, any message it gives fails the command, so a whole run is also a
/// check that the backend breaks no Vulkan rule. Skipped, with the Vulkan probe's reason, where no device exists.
/// </summary>
[Trait("Category", "Slow")]
public sealed class VulkanModelTests : IDisposable
{
    // Small windows keep the test short on lavapipe (a software driver): 2 windows of 32 tokens, 30 scored tokens.
    private const int Ctx = 32, Chunks = 2;
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromSeconds(180);

    private readonly string _dir = Directory.CreateTempSubdirectory("serving-vulkan-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>
    /// Weight type and the largest |Δ log p| allowed on any scored token between vulkan:0 and cpu:0 (the mean must stay
    /// under a quarter of it). f32 and f16: both backends multiply f32 activations by exactly the same weights, so only
    /// the order of additions differs: 0.01 nats, as the issue asks (measured 0.0002). Quantized: the Cpu backend rounds
    /// the activations to q8_0 blocks before its integer dot products, the Vulkan MatMul multiplies f32 activations by the
    /// dequantized blocks — the same difference as between llama.cpp and Serving, so the same bound as
    /// Interop/LlamaCppTests uses for the quantized types, 0.2 (measured 0.063 for q8_0, 0.073 for q4_0 on 62 tokens).
    /// </summary>
    public static TheoryData<string, double> Cases() => new()
    {
        { "f32", 0.01 },
        { "f16", 0.01 },
        { "q8_0", 0.2 },
        { "q4_0", 0.2 },
    };

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public async Task Perplexity_on_vulkan_matches_cpu_on_every_scored_token(string type, double maxDelta)
    {
        VulkanDevice.SkipUnlessPresent();
        string model = Path.Combine(_dir, $"tiny-{type}.gguf");
        SyntheticModel.Create("tiny", DataTypeOf(type), model, seed: 3);
        string text = Path.Combine(InteropTests.RepoRoot(), "README.md");

        var cpu = await Perplexity(model, text, "cpu:0");
        var vulkan = await Perplexity(model, text, "vulkan:0");

        Assert.Equal(Chunks * (Ctx / 2 - 1), cpu.LogProbs.Length);
        Assert.Equal(cpu.Tokens, vulkan.Tokens);
        double worst = 0, sum = 0;
        int worstAt = -1;
        for (int i = 0; i < cpu.LogProbs.Length; i++)
        {
            Assert.True(double.IsFinite(vulkan.LogProbs[i]), $"token {i}: log p {vulkan.LogProbs[i]} on vulkan:0");
            double d = Math.Abs(cpu.LogProbs[i] - vulkan.LogProbs[i]);
            sum += d;
            if (d > worst) (worst, worstAt) = (d, i);
        }
        double mean = sum / cpu.LogProbs.Length;
        Assert.True(worst <= maxDelta, $"{type}: token {worstAt} (id {cpu.Tokens[worstAt]}) differs by {worst:0.00000} nats (bound {maxDelta}); mean {mean:0.00000}");
        Assert.True(mean <= maxDelta / 4, $"{type}: mean |Δ log p| {mean:0.00000} nats exceeds {maxDelta / 4}");
    }

    /// <summary>
    /// Greedy decoding of the tiny f32 model: the same 24 tokens on both devices, in process through the scheduler
    /// (greedy rows take the device's Argmax on vulkan:0 and on cpu:0 alike). With f32 weights and logits the per-token
    /// differences measured above are ~1e-4 nats, far below the gap between a synthetic model's top two logits at
    /// these steps, so the same tokens are expected; a broken Argmax, KV write or Gather on Vulkan changes them.
    /// </summary>
    [SkippableFact]
    public async Task Greedy_generation_gives_the_same_tokens_on_vulkan_and_cpu()
    {
        VulkanDevice.SkipUnlessPresent();
        string model = Path.Combine(_dir, "tiny-f32.gguf");
        SyntheticModel.Create("tiny", DataType.F32, model, seed: 7);
        var registry = DeviceRegistry.Discover(Path.Combine(AppContext.BaseDirectory, "plugins"));

        async Task<IReadOnlyList<int>> Generate(string deviceId)
        {
            using IAccelerator device = registry.Open(deviceId);
            using var loaded = LoadedModel.Open(model, device, new ModelOptions { ContextLength = 64, MaxBatchSequences = 1, KvCacheTokens = 64 });
            var decoder = new TokenizerDecoder(loaded.Tokenizer, ignoreEndOfGeneration: true);
            await using var scheduler = new Scheduler(loaded.Model, decoder, new SchedulerOptions { MaxBatchSequences = 1 });
            var request = new GenerationRequest("greedy", loaded.Tokenizer.Encode("Once upon a time, there was a", true), 24, new SamplingParams(Temperature: 0));
            GenerationResult result = await scheduler.Submit(request).Completion;
            Assert.True(result.FinishReason == FinishReason.Length, $"{deviceId}: finished with {result.FinishReason}: {result.Error}");
            return result.TokenIds;
        }

        IReadOnlyList<int> cpu = await Generate("cpu:0");
        IReadOnlyList<int> vulkan = await Generate("vulkan:0");
        Assert.Equal(24, cpu.Count);
        Assert.Equal(cpu, vulkan);
    }

    /// <summary>
    /// <c>generate --device vulkan:0</c> as a user runs it, with the Khronos validation layer on
    /// (SERVING_VULKAN_VALIDATION=1): it must stay silent for a whole load, prompt, decode and shutdown. Skipped when
    /// the layer is not installed.
    /// </summary>
    [SkippableFact]
    public async Task Generate_on_vulkan_runs_silent_under_the_validation_layer()
    {
        VulkanDevice.SkipUnlessPresent();
        string model = Path.Combine(_dir, "tiny-q8_0.gguf");
        SyntheticModel.Create("tiny", DataType.Q8_0, model, seed: 7);
        var psi = Host("generate", "--model", model, "--prompt", "Once upon a time", "--max-tokens", "12", "--temperature", "0",
            "--device", "vulkan:0");
        psi.Environment["SERVING_VULKAN_VALIDATION"] = "1";
        // The backend turns the layer's messages into errors while the device is in use, and writes what the layer
        // says while the device and instance are destroyed (leaked objects) to stderr, where the assertion below sees
        // it. As a second witness the layer also logs every message to a file of its own (its settings file, found
        // through VK_LAYER_SETTINGS_PATH).
        string log = Path.Combine(_dir, "validation.log");
        File.WriteAllText(Path.Combine(_dir, "vk_layer_settings.txt"),
            $"khronos_validation.debug_action = VK_DBG_LAYER_ACTION_LOG_MSG\nkhronos_validation.log_filename = {log}\nkhronos_validation.report_flags = error,warn\n");
        psi.Environment["VK_LAYER_SETTINGS_PATH"] = _dir;
        (int exit, string stdout, string stderr) = await ChildProcess.RunToEndAsync(psi, ChildTimeout);
        Skip.If(exit != 0 && stderr.Contains("is not installed", StringComparison.Ordinal), $"the validation layer is missing: {stderr.Trim()}");
        Assert.True(exit == 0, $"exit {exit}: {stderr}");
        Assert.StartsWith("Once upon a time", stdout, StringComparison.Ordinal);
        Assert.Contains("generated tokens: 12", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("validation", stderr, StringComparison.OrdinalIgnoreCase);
        Assert.True(File.Exists(log), "the validation layer did not read its settings file, so its log cannot be checked");
        Assert.Equal("", File.ReadAllText(log));
    }

    /// <summary>
    /// Where vulkan:0 imports host memory (VK_EXT_external_memory_host on a unified-memory device: lavapipe, integrated
    /// GPUs), the weights are read in place from the mapped file — the load line says "memory-mapped" — and every token
    /// scores exactly (bit for bit) as with the weights copied (SERVING_VULKAN_NO_HOST_IMPORT=1: "resident"). q4_0:
    /// 18-byte blocks, so tensors sit at offsets that are no multiple of the binding alignment.
    /// </summary>
    [SkippableFact]
    public async Task Perplexity_on_vulkan_is_identical_with_weights_read_in_place_and_copied()
    {
        VulkanDevice.SkipUnlessPresent();
        IReadOnlyList<string> details = VulkanDevice.Details();
        Skip.If(!details.Any(d => d.StartsWith("uses:", StringComparison.Ordinal) && d.Contains("host memory import", StringComparison.Ordinal)),
            $"vulkan:0 does not read host memory in place: {string.Join("; ", details)}");
        string model = Path.Combine(_dir, "tiny-q4_0.gguf");
        SyntheticModel.Create("tiny", DataType.Q4_0, model, seed: 5);
        string text = Path.Combine(InteropTests.RepoRoot(), "README.md");

        var inPlace = await Perplexity(model, text, "vulkan:0", "in-place");
        var copied = await Perplexity(model, text, "vulkan:0", "copied", ("SERVING_VULKAN_NO_HOST_IMPORT", "1"));

        Assert.Contains(", memory-mapped,", inPlace.Log, StringComparison.Ordinal);
        Assert.Contains(", resident,", copied.Log, StringComparison.Ordinal);
        Assert.Equal(Chunks * (Ctx / 2 - 1), inPlace.LogProbs.Length);
        Assert.Equal(copied.Tokens, inPlace.Tokens);
        Assert.Equal(copied.LogProbs, inPlace.LogProbs);
    }

    private async Task<(int[] Tokens, double[] LogProbs, string Log)> Perplexity(string model, string text, string device, string tag = "", params (string Name, string Value)[] environment)
    {
        string json = Path.Combine(_dir, $"{Path.GetFileNameWithoutExtension(model)}.{device.Replace(':', '_')}{tag}.json");
        var psi = Host("perplexity", "--model", model, "--file", text, "--ctx", $"{Ctx}", "--chunks", $"{Chunks}", "--json", json, "--device", device);
        foreach (var (name, value) in environment) psi.Environment[name] = value;
        (int exit, _, string stderr) = await ChildProcess.RunToEndAsync(psi, ChildTimeout);
        Assert.True(exit == 0, $"perplexity on {device} exited {exit}: {stderr}");
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        return (doc.RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray(),
                doc.RootElement.GetProperty("logprobs").EnumerateArray().Select(t => t.GetDouble()).ToArray(), stderr);
    }

    private static ProcessStartInfo Host(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Serving.Host.dll"));
        foreach (string a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--plugins");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "plugins"));
        return psi;
    }

    private static DataType DataTypeOf(string name) => name switch
    {
        "f32" => DataType.F32,
        "f16" => DataType.F16,
        "q8_0" => DataType.Q8_0,
        "q4_0" => DataType.Q4_0,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };
}

/// <summary>
/// <c>serve --device vulkan:0</c> when the Vulkan device is lost: the backend's own VK_ERROR_DEVICE_LOST path (its
/// test hook <c>VulkanAccelerator.Fault</c>, reached by reflection since the plugin is loaded in its own context, feeds
/// the driver's code in as a hung GPU would; lavapipe never loses its device) makes the next call of the real model's
/// forward step throw an AcceleratorException with DeviceLost; the server fails the requests in flight with a clear
/// error, marks vulkan:0 failed and keeps answering health.
/// </summary>
[Collection("rpc")]
[Trait("Category", "Slow")]
public sealed class VulkanDeviceLostTests(RpcHostFixture fixture)
{
    [SkippableFact]
    public async Task DeviceLost_on_vulkan_fails_in_flight_marks_the_device_failed_and_health_keeps_answering()
    {
        VulkanDevice.SkipUnlessPresent();
        await using var host = fixture.Start(o => o with { DeviceId = "vulkan:0" });
        Assert.Equal("vulkan:0", host.Device.Descriptor.Id);
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);

        uint a = await c.SendRequestAsync("generate", Args.Generate("Once upon a time", 100, stream: true));
        uint b = await c.SendRequestAsync("generate", Args.Generate("The dragon", 100, stream: true));
        await c.WaitNotificationAsync("generate.token");
        LoseDevice(host.Device);

        foreach (uint id in new[] { a, b })
        {
            var r = await c.WaitReplyAsync(id);
            Assert.Equal("unavailable", r.Code);
            Assert.Contains("device vulkan:0 was lost", r.Message, StringComparison.Ordinal);
            Assert.Contains("marked failed", r.Message, StringComparison.Ordinal);
            Assert.Equal("vulkan:0", Args.Str(r.Data, "device"));
        }
        for (int i = 0; i < 3; i++)
        {
            var health = (await c.CallAsync("health")).Result;
            Assert.Equal("faulted", Args.Str(health, "status"));
            Assert.False(Args.Field(health, "ready").AsBool());
            Assert.Contains("device vulkan:0 was lost", Args.Str(health, "reason"), StringComparison.Ordinal);
            Assert.Contains("native code -4", Args.Str(health, "reason"), StringComparison.Ordinal); // VK_ERROR_DEVICE_LOST
        }
        var devices = (await c.CallAsync("devices.list")).Result;
        var serving = devices.AsArray().ToArray().Single(d => d.TryGetValue("id", out var id) && id.TryGetString(out var s) && s == "vulkan:0");
        Assert.Equal("failed", Args.Str(serving, "status"));
        Assert.Equal("unavailable", (await c.CallAsync("generate", Args.Generate("After the loss", 1))).Code);
    }

    /// <summary>Calls the Vulkan backend's <c>Fault(VK_ERROR_DEVICE_LOST, …)</c>: what its submit and fence waits do
    /// when the driver answers VK_ERROR_DEVICE_LOST (the device is then lost for every later call).</summary>
    private static void LoseDevice(IAccelerator device)
    {
        MethodInfo fault = device.GetType().GetMethod("Fault", BindingFlags.Instance | BindingFlags.NonPublic)
            ?? throw new InvalidOperationException($"{device.GetType().FullName} has no Fault test hook");
        Type result = fault.GetParameters()[0].ParameterType; // Silk.NET.Vulkan.Result, from the plugin's load context
        var e = (AcceleratorException)fault.Invoke(device, [Enum.ToObject(result, -4), "injected by the test"])!;
        Assert.True(e.DeviceLost);
    }
}
