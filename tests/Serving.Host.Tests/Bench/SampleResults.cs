using Serving.Host.Benchmarks.Suite;

namespace Serving.Host.Tests.Bench;

/// <summary>Hand-made suite results: two devices measured (one with a counter meter, one not measured), one that
/// failed, and an external meter — every case the report and compare must handle, without running a device.</summary>
internal static class SampleResults
{
    public static readonly ModelFacts Model = new("tiny", "/m/tiny.gguf", "tiny", "q8_0", 16_137_216, 15_187_968, 6, 288, 6, 6, 48, 768, 32000);

    /// <summary>A test from its per-repetition seconds (and joules, for a device with a meter).</summary>
    public static TestResult Test(string name, string kind, int batch, long tokens, int steps, double[] seconds, double[]? joules = null, double[]? system = null) =>
        BenchSuite.Summarize(name, kind, batch, tokens, steps,
            [.. seconds.Select((s, i) => new Sample(s, tokens / s, joules?[i], null, joules is null ? 0 : 3, system?[i], null))],
            Model, Model.WeightBytes, bandwidthGBps: 25, computeGFlops: 80, energyMethod: joules is null ? "not measured" : "counter");

    public static DeviceResults Device(string id, string name, double scale, bool meter, string fingerprint, bool external = true) => new()
    {
        Id = id,
        Name = name,
        Vendor = "test",
        Kind = "Cpu",
        DriverVersion = "1.0",
        Fingerprint = fingerprint,
        Meter = meter ? new MeterFacts("rapl:package-0", "counter") : null,
        Bandwidth = new Peak(25, [24, 25, 23], "Copy"),
        Compute = new Peak(80, [78, 80], "MatMul q8_0"),
        Tests =
        [
            Test("pp64", "prompt", 1, 64, 1, [0.05 * scale, 0.052 * scale, 0.049 * scale], meter ? [2.0, 2.1, 1.9] : null, external ? [5.0, 5.2, 4.9] : null),
            Test("tg16@1", "decode", 1, 16, 16, [0.1 * scale, 0.11 * scale, 0.1 * scale], meter ? [3.0, 3.2, 3.1] : null, external ? [8.0, 8.1, 8.0] : null),
            Test("tg16@4", "decode", 4, 64, 16, [0.2 * scale, 0.21 * scale, 0.19 * scale], meter ? [5.0, 5.1, 4.8] : null, external ? [15.0, 15.5, 14.8] : null),
        ],
        Ops = new OpProfile(1, 4, 6.0, [new OpShare("MatMul", 5.0, 43), new OpShare("Attention", 0.6, 6), new OpShare("RmsNorm", 0.4, 13)], null),
    };

    public static SuiteResults Create(string evilName = "AMD EPYC") => new()
    {
        Created = new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero),
        CommandLine = "serving bench --devices all",
        Git = new GitFacts("0123456789abcdef0123456789abcdef01234567", false),
        Host = new HostFacts("test-host", "Linux", "6.1", 2, ".NET 10", "0.1.0"),
        Settings = new SuiteSettings(64, 16, [1, 4], 3, "f16", 0, 64L << 20),
        Model = Model,
        ExternalMeter = new MeterFacts("external: echo 50 W", "power samples"),
        Devices =
        [
            Device("cpu:0", evilName, 1, meter: true, "cpu|fp"),
            Device("vulkan:0", "llvmpipe", 4, meter: false, "vulkan|fp") with { Ops = new OpProfile(1, 0, 0, [], "no device timestamps: test") },
            new DeviceResults { Id = "cuda:0", Error = "no backend 'cuda'" },
        ],
    };
}
