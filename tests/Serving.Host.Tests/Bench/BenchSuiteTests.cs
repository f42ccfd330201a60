using System.Diagnostics;
using System.Text.Json;
using Serving.Abstractions;
using Serving.Host.Benchmarks.Suite;
using Serving.Host.Plugins;
using Serving.Host.Tests.Interop;
using Serving.Host.Tests.Models;

namespace Serving.Host.Tests.Bench;

/// <summary>The suite run for real on cpu:0 with the tiny model and a small workload, then through its outputs.</summary>
[Collection("tiny")]
[Trait("Category", "Slow")] // whole-model runs on cpu:0, the CLI and Chromium as child processes
public sealed class BenchSuiteTests(TinyModelFixture fixture) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "serving-bench-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private SuiteOptions Options(string? powerFile = null) => new()
    {
        Devices = ["cpu:0", "nope:0"],
        ModelPath = fixture.PathOf(DataType.Q8_0),
        Shape = "tiny",
        Prompt = 16,
        Gen = 4,
        Batches = [1, 2],
        Repetitions = 3,
        BandwidthBytes = 16L << 20,
        ProfileSteps = 2,
        PowerFile = powerFile,
        PowerInterval = TimeSpan.FromMilliseconds(20),
        CommandLine = "serving bench --test",
    };

    /// <summary>One real run shared by the tests below (a few seconds on the 2-core machine).</summary>
    private static (SuiteResults Results, int Steps, int Units)? _run;
    private static readonly object Gate = new();

    private (SuiteResults Results, int Steps, int Units) RunOnce()
    {
        lock (Gate)
        {
            if (_run is { } done) return done;
            string dir = Path.Combine(Path.GetTempPath(), "serving-bench-meter-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            try
            {
                // A wall meter that always reads 50 W: each repetition's system energy must be 50 W × its measured interval.
                string meter = Path.Combine(dir, "meter.txt");
                File.WriteAllText(meter, "50 W\n");
                var registry = DeviceRegistry.Discover(Path.Combine(AppContext.BaseDirectory, "plugins"));
                int steps = 0;
                var suite = new BenchSuite(Options(meter), registry, step: () => steps++);
                _run = (suite.Run(), steps, suite.UnitsPerDevice);
                return _run.Value;
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void Cpu_RunsEveryTestRepeatedly_WithSpreadFloorsOpsAndExternalEnergy_AndKeepsEverySample()
    {
        var (results, steps, units) = RunOnce();
        Directory.CreateDirectory(_dir);
        Assert.Equal(2 * units, steps); // the progress bar reaches its total
        Assert.Equal("serving bench --test", results.CommandLine);
        Assert.Equal("power samples", results.ExternalMeter!.Kind);
        var failed = results.Devices[1];
        Assert.Equal("nope:0", failed.Id);
        Assert.Contains("no backend 'nope'", failed.Error);

        var cpu = results.Devices[0];
        Assert.Null(cpu.Error);
        Assert.Equal(fixture.Device.Descriptor.Fingerprint, cpu.Fingerprint);
        Assert.Equal(fixture.Device.Descriptor.DriverVersion, cpu.DriverVersion);
        Assert.NotNull(cpu.TunerNote);
        Assert.Equal(fixture.Device.EnergyMeter?.Source, cpu.Meter?.Source); // null on a VM: "not measured"
        Assert.True(cpu.Bandwidth!.Value > 0 && cpu.Bandwidth.Samples.Length == 7 && cpu.Bandwidth.Value == cpu.Bandwidth.Samples.Max());
        Assert.True(cpu.Compute!.Value > 0 && cpu.Compute.Samples.Length == 5);
        Assert.Equal(["pp16", "tg4@1", "tg4@2"], cpu.Tests.Select(t => t.Name));
        foreach (var t in cpu.Tests)
        {
            Assert.Equal(3, t.Samples.Count);
            Assert.All(t.Samples, s => Assert.Equal(t.Tokens / s.Seconds, s.TokensPerSecond, 6));
            var expected = Stat.Of(t.Samples.Select(s => s.TokensPerSecond))!;
            Assert.Equal(expected, t.TokensPerSecond);
            Assert.True(t.FloorTokensPerSecond > 0 && t.OfFloor > 0 && t.FloorBound is "bandwidth" or "compute");
            Assert.Equal(Stat.Of(t.Samples.Select(s => t.Bytes / s.Seconds / 1e9)), t.AchievedGBps);
            Assert.Equal(Stat.Of(t.Samples.Select(s => t.Flops / s.Seconds / 1e9)), t.AchievedGFlops);
            // The external meter: 50 W over each interval (a constant power integrates exactly).
            Assert.All(t.Samples, s => Assert.Equal(50 * s.Seconds, s.SystemJoules!.Value, 50 * s.Seconds * 0.02 + 1e-3));
            Assert.Equal(50, t.SystemWatts!.Mean, 1.0);
            Assert.Equal(50.0 * t.Samples.Average(s => s.Seconds) / t.Tokens, t.SystemJoulesPerToken!.Mean, 0.02 * t.SystemJoulesPerToken.Mean + 1e-6);
            if (cpu.Meter is null)
            {
                Assert.Equal("not measured", t.EnergyMethod);
                Assert.All(t.Samples, s => Assert.Null(s.Joules));
                Assert.Null(t.JoulesPerToken);
            }
        }
        var tg2 = cpu.Tests[2];
        Assert.Equal(8, tg2.Tokens);
        Assert.Equal(4, tg2.Steps);
        Assert.Equal(tg2.TokensPerSecond!.Mean / 2, tg2.TokensPerSecondPerSequence!.Mean, tg2.TokensPerSecondPerSequence.Mean * 0.3);

        // Device time per op: the tiny model's step has 6 layers of 7 MatMuls, the output head, and the logits'
        // finiteness probe (a MatMul by a row of ones, LlamaModel).
        var ops = cpu.Ops!;
        Assert.Null(ops.Note);
        Assert.Equal(2, ops.Steps);
        var matmul = ops.PerOp.Single(o => o.Op == "MatMul");
        Assert.Equal(6 * 7 + 2, matmul.CountPerStep);
        Assert.Equal(6, ops.PerOp.Single(o => o.Op == "Attention").CountPerStep);
        Assert.Equal(ops.StepMs, ops.PerOp.Sum(o => o.MsPerStep), 9);
        Assert.True(matmul.MsPerStep > 0);

        // Every sample survives results.json.
        string json = Path.Combine(_dir, "results.json");
        File.WriteAllText(json, results.ToJson());
        var back = SuiteResults.Load(json);
        Assert.Equal(cpu.Tests.SelectMany(t => t.Samples), back.Devices[0].Tests.SelectMany(t => t.Samples));
        using (var doc = JsonDocument.Parse(File.ReadAllText(json)))
            Assert.Equal(JsonValueKind.Number, doc.RootElement.GetProperty("devices")[0].GetProperty("tests")[0].GetProperty("samples")[0].GetProperty("seconds").ValueKind);
    }

    [SkippableFact]
    public async Task TheReportOfARealRun_DrawsEveryChartInChromium()
    {
        Skip.If(HeadlessChromium.Executable is null, HeadlessChromium.Missing);
        var (results, _, _) = RunOnce();
        Directory.CreateDirectory(_dir);
        string html = Path.Combine(_dir, "report.html");
        File.WriteAllText(html, ReportHtml.Render(results));
        var (dom, console) = await HeadlessChromium.DumpDomAsync(html);
        ReportChecks.AssertDrawn(dom, console, new Dictionary<string, string[]>
        {
            ["throughput"] = ["cpu:0"],
            ["roofline"] = ["cpu:0"],
            ["energy"] = ["cpu:0", "cpu:0 (system)"],
            ["ops"] = ["cpu:0"],
        });
        Assert.Equal(3, ReportChecks.Marks(dom, "energy", "cpu:0 (system)"));
    }

    [Fact]
    public async Task TheCli_WritesTheThreeFiles_AndPrintsTheTable()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "Serving.Host.dll");
        var psi = new ProcessStartInfo("dotnet");
        foreach (string a in new[] { dll, "bench", "--devices", "cpu:0", "--model", fixture.PathOf(DataType.Q8_0), "--prompt", "8", "--gen", "2",
                     "--batch", "1", "--repetitions", "2", "--bandwidth-mib", "8", "--profile-steps", "1", "--out", _dir,
                     "--plugins", Path.Combine(AppContext.BaseDirectory, "plugins") })
            psi.ArgumentList.Add(a);
        string stdout = await ChildProcess.RunAsync(psi, TimeSpan.FromMinutes(2));
        Assert.Contains("cpu:0", stdout);
        Assert.Matches(@"cpu:0\s+pp8\s+[\d.]+ ± [\d.]+", stdout);
        Assert.Matches(@"cpu:0\s+tg2@1\s+[\d.]+ ± [\d.]+", stdout);
        foreach (string f in new[] { "results.json", "results.md", "report.html" }) Assert.True(File.Exists(Path.Combine(_dir, f)), f);
        var r = SuiteResults.Load(Path.Combine(_dir, "results.json"));
        Assert.StartsWith("Serving.Host bench --devices cpu:0 --model ", r.CommandLine);
        Assert.Equal(2, r.Devices[0].Tests[0].Samples.Count);
        ReportChecks.AssertSelfContained(File.ReadAllText(Path.Combine(_dir, "report.html")));

        // bench compare of the run with itself: nothing beyond the spread.
        var compare = new ProcessStartInfo("dotnet");
        foreach (string a in new[] { dll, "bench", "compare", Path.Combine(_dir, "results.json"), Path.Combine(_dir, "results.json") }) compare.ArgumentList.Add(a);
        string cmp = await ChildProcess.RunAsync(compare, TimeSpan.FromMinutes(1));
        Assert.Contains("0 of 2 differ by more than the measured spread", cmp);
        Assert.Matches(@"cpu:0\s+pp8\s+.*1\.000x\s+no", cmp);
    }
}
