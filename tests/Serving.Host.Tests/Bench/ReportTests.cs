using Serving.Host.Benchmarks.Suite;

namespace Serving.Host.Tests.Bench;

/// <summary>report.html in headless Chromium: every chart draws its series, nothing is fetched, no console message.</summary>
public sealed class ReportTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "serving-report-" + Guid.NewGuid().ToString("N"));

    public ReportTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [SkippableFact]
    [Trait("Category", "Slow")] // Chromium as a child process
    public async Task EveryChartDraws_ForMeasuredUnmeteredAndFailedDevices_WithoutConsoleMessages()
    {
        Skip.If(HeadlessChromium.Executable is null, HeadlessChromium.Missing);
        // A device name that tries to end the data element: it must stay text.
        var results = SampleResults.Create(evilName: "</script><script>console.error('injected')</script>");
        string html = ReportHtml.Render(results);
        ReportChecks.AssertSelfContained(html);
        string path = Path.Combine(_dir, "report.html");
        File.WriteAllText(path, html);

        var (dom, console) = await HeadlessChromium.DumpDomAsync(path);
        ReportChecks.AssertDrawn(dom, console, new Dictionary<string, string[]>
        {
            ["throughput"] = ["cpu:0", "vulkan:0"],
            ["roofline"] = ["cpu:0", "vulkan:0"],
            ["energy"] = ["cpu:0", "cpu:0 (system)", "vulkan:0", "vulkan:0 (system)"],
            ["ops"] = ["cpu:0", "vulkan:0"],
        });
        // A line, a floor and a dot per batch; a roof and three points; three bars where
        // measured and "not measured" where not; three op segments.
        Assert.Equal(2 + 2, ReportChecks.Marks(dom, "throughput", "cpu:0"));
        Assert.Equal(1 + 3, ReportChecks.Marks(dom, "roofline", "vulkan:0"));
        Assert.Equal(3, ReportChecks.Marks(dom, "energy", "cpu:0"));
        Assert.Equal(3, ReportChecks.Marks(dom, "energy", "vulkan:0 (system)"));
        Assert.Equal(0, ReportChecks.Marks(dom, "energy", "vulkan:0"));
        Assert.Contains("vulkan:0: not measured", dom);
        Assert.Equal(3, ReportChecks.Marks(dom, "ops", "cpu:0"));
        Assert.Contains("no device timestamps: test", dom);
        Assert.Contains("failed: no backend 'cuda'", dom);
        Assert.Contains("&lt;/script&gt;&lt;script&gt;console.error('injected')&lt;/script&gt;", dom);
    }

    [SkippableFact]
    [Trait("Category", "Slow")] // Chromium as a child process
    public async Task AReportWithoutAnyMeter_SaysNotMeasured_AndStillDrawsEveryChart()
    {
        Skip.If(HeadlessChromium.Executable is null, HeadlessChromium.Missing);
        var one = SampleResults.Device("cpu:0", "cpu", 1, meter: false, "fp", external: false);
        var results = SampleResults.Create() with { ExternalMeter = null, Devices = [one] };
        string path = Path.Combine(_dir, "plain.html");
        File.WriteAllText(path, ReportHtml.Render(results));
        var (dom, console) = await HeadlessChromium.DumpDomAsync(path);
        ReportChecks.AssertDrawn(dom, console, new Dictionary<string, string[]>
        {
            ["throughput"] = ["cpu:0"], ["roofline"] = ["cpu:0"], ["energy"] = ["cpu:0"], ["ops"] = ["cpu:0"],
        });
        Assert.Contains("cpu:0: not measured", dom);
    }

    [Fact]
    public void MarkdownAndTable_ShowMeanAndSpread_AndNotMeasured()
    {
        var results = SampleResults.Create();
        string md = SuiteText.Markdown(results);
        Assert.Contains("| cpu:0 | pp64 |", md);
        Assert.Contains("not measured", md);
        Assert.Contains("**cuda:0 failed:** no backend 'cuda'", md);
        Assert.Contains("## Time per op, cpu:0", md);
        var rows = SuiteText.Rows(results).ToList();
        Assert.Equal(6, rows.Count);
        var tg = rows.Single(r => r[0] == "cpu:0" && r[1] == "tg16@4");
        var t = results.Devices[0].Tests[2];
        Assert.Equal($"{t.TokensPerSecond!.Mean:0.00} ± {t.TokensPerSecond.StdDev:0.00}", tg[2]);
        Assert.Equal("not measured", rows.Single(r => r[0] == "vulkan:0" && r[1] == "pp64")[9]);
    }

    [Fact]
    public void Results_RoundTripThroughJson()
    {
        var results = SampleResults.Create();
        string path = Path.Combine(_dir, "results.json");
        File.WriteAllText(path, results.ToJson());
        var back = SuiteResults.Load(path);
        Assert.Equal(results.Devices.Count, back.Devices.Count);
        Assert.Equal(results.Devices[0].Tests[1].Samples, back.Devices[0].Tests[1].Samples);
        Assert.Equal(results.Devices[0].Tests[1].TokensPerSecond, back.Devices[0].Tests[1].TokensPerSecond);
        File.WriteAllText(path, "{\"schema\":\"other\"}");
        Assert.Contains("not a bench results file", Assert.Throws<InvalidDataException>(() => SuiteResults.Load(path)).Message);
    }
}
