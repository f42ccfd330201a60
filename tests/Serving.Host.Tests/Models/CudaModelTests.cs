using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Serving.Abstractions;
using Serving.Engine.Synthetic;
using Serving.Host.Plugins;
using Serving.Host.Tests.Interop;

namespace Serving.Host.Tests.Models;

/// <summary>
/// The Cuda backend as the host sees it: <c>devices</c> lists it with the probe's reason where no NVIDIA driver is
/// installed (the build machine), and the whole model through its kernels agrees with cpu:0. Without a GPU the kernels
/// run on the backend's test device — ILGPU's CPU accelerator, selected in the child processes with
/// SERVING_CUDA_TEST_DEVICE=cpu — which proves their arithmetic and indexing; a GPU proves the rest
/// (scripts/cuda-gpu-check.sh).
/// </summary>
[Trait("Category", "Slow")]
public sealed class CudaDevicesTests
{
    private const string TestDevice = "SERVING_CUDA_TEST_DEVICE";

    [SkippableFact]
    public async Task Devices_lists_cuda_with_the_reason_it_cannot_run_here()
    {
        Skip.If(NativeLibrary.TryLoad("libcuda.so.1", out nint lib) && lib != 0, "libcuda.so.1 is installed here: cuda is usable, not refused");
        Skip.If(Environment.GetEnvironmentVariable(TestDevice) == "cpu", $"{TestDevice}=cpu selects the test device in this process");
        var registry = DeviceRegistry.Discover(Path.Combine(AppContext.BaseDirectory, "plugins"));
        PluginEntry cuda = Assert.Single(registry.Plugins, p => p.Name == "cuda");
        Assert.False(cuda.Usable);
        Assert.StartsWith("libcuda.so.1 not found", cuda.Error ?? cuda.Probe?.Reason, StringComparison.Ordinal);

        var psi = CudaModelTests.Host("devices");
        psi.Environment.Remove(TestDevice);
        psi.Environment["COLUMNS"] = "400";
        string stdout = await ChildProcess.RunAsync(psi, TimeSpan.FromSeconds(60));
        string line = Assert.Single(stdout.Split('\n'), l => l.StartsWith("cuda ", StringComparison.Ordinal));
        Assert.Contains("unavailable: libcuda.so.1 not found", line, StringComparison.Ordinal);
    }
}

/// <summary>The whole tiny model through the Cuda kernels (the CPU test device, cuda:0) against cpu:0.</summary>
[Trait("Category", "Slow")]
public sealed class CudaModelTests : IDisposable
{
    private const int Ctx = 32, Chunks = 2;
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromSeconds(300);

    private readonly string _dir = Directory.CreateTempSubdirectory("serving-cuda-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>
    /// Weight type and the largest |Δ log p| allowed on any scored token (the mean must stay under a quarter of it), the
    /// bounds the Vulkan backend is held to: f32 multiplies the same f32 activations by the same weights, in another
    /// order (0.01 nats); the quantized types round the activations to q8_0 blocks as the Cpu backend does, but form
    /// each block's scale product in a different order (0.2, the bound llama.cpp is held to). Each case costs ~25 s on
    /// the CPU test device (ILGPU compiles the kernels in every process), so f16 and the K-quants are left to the
    /// conformance suite, which checks every type's kernels.
    /// </summary>
    public static TheoryData<string, double> Cases() => new()
    {
        { "f32", 0.01 },
        { "q8_0", 0.2 },
        { "q4_0", 0.2 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Perplexity_through_the_cuda_kernels_matches_cpu_on_every_scored_token(string type, double maxDelta)
    {
        string model = Path.Combine(_dir, $"tiny-{type}.gguf");
        SyntheticModel.Create("tiny", DataTypeOf(type), model, seed: 3);
        string text = Path.Combine(InteropTests.RepoRoot(), "README.md");

        var cpu = await Perplexity(model, text, "cpu:0");
        var cuda = await Perplexity(model, text, "cuda:0");

        Assert.Equal(Chunks * (Ctx / 2 - 1), cpu.LogProbs.Length);
        Assert.Equal(cpu.Tokens, cuda.Tokens);
        double worst = 0, sum = 0;
        int worstAt = -1;
        for (int i = 0; i < cpu.LogProbs.Length; i++)
        {
            Assert.True(double.IsFinite(cuda.LogProbs[i]), $"token {i}: log p {cuda.LogProbs[i]} on cuda:0");
            double d = Math.Abs(cpu.LogProbs[i] - cuda.LogProbs[i]);
            sum += d;
            if (d > worst) (worst, worstAt) = (d, i);
        }
        double mean = sum / cpu.LogProbs.Length;
        Assert.True(worst <= maxDelta, $"{type}: token {worstAt} (id {cpu.Tokens[worstAt]}) differs by {worst:0.00000} nats (bound {maxDelta}); mean {mean:0.00000}");
        Assert.True(mean <= maxDelta / 4, $"{type}: mean |Δ log p| {mean:0.00000} nats exceeds {maxDelta / 4}");
    }

    /// <summary>Greedy <c>generate</c> of the tiny f32 model: the same text on cuda:0 (through the device's Argmax) as on cpu:0.</summary>
    [Fact]
    public async Task Greedy_generate_gives_the_same_text_through_the_cuda_kernels()
    {
        string model = Path.Combine(_dir, "tiny-f32.gguf");
        SyntheticModel.Create("tiny", DataType.F32, model, seed: 7);
        async Task<string> Generate(string device)
        {
            var psi = Host("generate", "--model", model, "--prompt", "Once upon a time", "--max-tokens", "16", "--temperature", "0", "--device", device);
            (int exit, string stdout, string stderr) = await ChildProcess.RunToEndAsync(psi, ChildTimeout);
            Assert.True(exit == 0, $"{device}: exit {exit}: {stderr}");
            Assert.Contains("generated tokens: 16", stderr, StringComparison.Ordinal);
            return stdout;
        }
        string cpu = await Generate("cpu:0");
        string cuda = await Generate("cuda:0");
        Assert.StartsWith("Once upon a time", cpu, StringComparison.Ordinal);
        Assert.Equal(cpu, cuda);
    }

    private async Task<(int[] Tokens, double[] LogProbs)> Perplexity(string model, string text, string device)
    {
        string json = Path.Combine(_dir, $"{Path.GetFileNameWithoutExtension(model)}.{device.Replace(':', '_')}.json");
        var psi = Host("perplexity", "--model", model, "--file", text, "--ctx", $"{Ctx}", "--chunks", $"{Chunks}", "--json", json, "--device", device);
        await ChildProcess.RunAsync(psi, ChildTimeout);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        return (doc.RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray(),
                doc.RootElement.GetProperty("logprobs").EnumerateArray().Select(t => t.GetDouble()).ToArray());
    }

    /// <summary>The host as a child process, with the Cuda test device selected (cuda:0 = the CPU accelerator).</summary>
    internal static ProcessStartInfo Host(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Serving.Host.dll"));
        foreach (string a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--plugins");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "plugins"));
        psi.Environment["SERVING_CUDA_TEST_DEVICE"] = "cpu";
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
