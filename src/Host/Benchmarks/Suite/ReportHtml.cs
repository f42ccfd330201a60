namespace Serving.Host.Benchmarks.Suite;

/// <summary>
/// report.html: one self-contained file (no network needed to open it) — the results embedded as JSON, the charts drawn
/// as SVG by an inline script: tokens/s against batch per device, a roofline against the measured peaks, tokens per
/// joule per device, time per op per device. The template is src/Host/Benchmarks/Suite/report.html.
/// </summary>
internal static class ReportHtml
{
    private const string Placeholder = "/*BENCH-DATA*/";

    /// <summary>The report for <paramref name="results"/>.</summary>
    public static string Render(SuiteResults results)
    {
        using var stream = typeof(ReportHtml).Assembly.GetManifestResourceStream("Serving.Host.Benchmarks.Suite.report.html")
                           ?? throw new InvalidOperationException("report template missing from the host assembly");
        string template = new StreamReader(stream).ReadToEnd();
        // System.Text.Json escapes '<', '>' and '&' in strings, so no "</script>" can end the data element early.
        return template.Replace(Placeholder, results.ToJson(), StringComparison.Ordinal);
    }
}
