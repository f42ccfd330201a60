using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Serving.Abstractions;
using Serving.Conformance.Tests.Infrastructure;

namespace Serving.Conformance.Tests;

// SIMD tiers (docs/conformance.md "Every SIMD tier on one machine", after ImageSharp's FeatureTestRunner): the in-process run
// tests only the widest tier this CPU has. Here this same assembly is started again as a child process
// (Program.Main → TierCheck) with the runtime's hardware-intrinsic switches off, and runs a subset — MatMul for every
// weight type and variant, RmsNorm, SwiGlu, Add (also broadcast), Argmax, KvWrite and Attention for f16 and f32 caches
// (every kernel on the vector driver, and both f16 conversions) — on reduced shapes that still have tails.
public abstract partial class ConformanceSuite
{
    /// <summary>The tiers: name, environment for the child, and what the child must then report.</summary>
    public static TheoryData<string> SimdTiers() => new() { "no-avx512", "no-avx2", "scalar", "emulated-512" };

    /// <summary>
    /// The kernel subset passes with AVX-512 off, with AVX2 off, and with all hardware intrinsics off (a tier this CPU
    /// lacks anyway is skipped: the in-process tests already ran it). On a CPU without AVX-512, "emulated-512" runs the
    /// Cpu backend's 512-bit kernels anyway (SERVING_CPU_SIMD=512: the runtime computes Vector512 in software, slowly
    /// but exactly), so their code is checked on every machine.
    /// </summary>
    [SkippableTheory, MemberData(nameof(SimdTiers)), Trait("Category", "Slow")]
    public void KernelsPassAtSimdTier(string tier)
    {
        var device = Device;
        Skip.If(device.Descriptor.Kind != DeviceKind.Cpu, $"{BackendName} is not a CPU device: the runtime's SIMD switches do not change its kernels");
        // A CPU device of another backend (Vulkan's lavapipe) runs its own compiled shaders, not the Cpu backend's .NET
        // vector kernels that these switches (and SERVING_CPU_SIMD) select.
        Skip.If(BackendName != "cpu", $"{BackendName} runs its own kernels on this CPU device: the .NET SIMD switches and SERVING_CPU_SIMD select only the cpu backend's");
        bool x86 = RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.X86;
        // .NET 10 folds AVX-512 F/BW/CD/DQ/VL into one switch, DOTNET_EnableAVX512; the older DOTNET_EnableAVX512F is
        // kept as an alias (dotnet/runtime#115983). Set both so the test means the same on .NET 8/9.
        var (environment, expectV512, expectV256, expectV128) = tier switch
        {
            "no-avx512" => (new Dictionary<string, string> { ["DOTNET_EnableAVX512"] = "0", ["DOTNET_EnableAVX512F"] = "0" }, false, (bool?)null, (bool?)null),
            "no-avx2" => (new Dictionary<string, string> { ["DOTNET_EnableAVX2"] = "0" }, false, false, (bool?)null),
            "scalar" => (new Dictionary<string, string> { ["DOTNET_EnableHWIntrinsic"] = "0" }, false, (bool?)false, (bool?)false),
            "emulated-512" => (new Dictionary<string, string> { ["SERVING_CPU_SIMD"] = "512" }, false, (bool?)null, (bool?)null),
            _ => throw new ArgumentOutOfRangeException(nameof(tier), tier, null),
        };
        Skip.If(tier != "scalar" && !x86, $"{tier}: an x86 switch, and this is {RuntimeInformation.ProcessArchitecture}");
        Skip.If(tier == "no-avx512" && !Vector512.IsHardwareAccelerated, "this CPU has no AVX-512: the in-process run already is the no-AVX-512 tier");
        Skip.If(tier == "no-avx2" && !Vector256.IsHardwareAccelerated, "this CPU has no AVX2: the in-process run already is the no-AVX2 tier");
        Skip.If(tier == "emulated-512" && Vector512.IsHardwareAccelerated, "this CPU has AVX-512: the in-process run already runs the 512-bit kernels");

        var (exitCode, output) = RunChild(environment);
        Assert.True(exitCode == 0, $"{tier} child exited {exitCode}:\n{output}");
        // Prove the switch took effect, or the test would silently re-run the default tier.
        Assert.Contains($"Vector512={expectV512}", output);
        if (expectV256 is bool v256) Assert.Contains($"Vector256={v256}", output);
        if (expectV128 is bool v128) Assert.Contains($"Vector128={v128}", output);
        if (tier == "emulated-512") Assert.Matches(@"device: .*Vector512", output); // the backend took the override
        Assert.Contains("all passed", output);
    }

    /// <summary>Runs this assembly's tier check (Program.Main) on this suite's backend in a child process with
    /// <paramref name="environment"/> added, limited to <paramref name="ops"/> (a comma list; null: the whole subset).</summary>
    private protected (int ExitCode, string Output) RunChild(Dictionary<string, string> environment, string? ops = null)
    {
        string assembly = typeof(ConformanceSuite).Assembly.Location;
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(assembly)!,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(assembly);
        start.ArgumentList.Add(Program.TierCheckCommand);
        start.ArgumentList.Add(BackendName);
        if (ops is not null) start.ArgumentList.Add(ops);
        foreach (var (key, value) in environment) start.Environment[key] = value;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            return (-1, $"timed out after 3 minutes\n{stdout.Result}\n{stderr.Result}");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    // The muxer that runs this test host ("dotnet"); DOTNET_HOST_PATH is set by the SDK for processes it starts.
    private static string DotnetHost()
    {
        string? path = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(path) && File.Exists(path)) return path;
        string? self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        return "dotnet";
    }
}
