using System.Text.RegularExpressions;

namespace Serving.Host.Tests.Bench;

/// <summary>What a rendered report.html must show: every chart drawn, with its series, and no error.</summary>
internal static partial class ReportChecks
{
    /// <summary>The four charts and the series each must have drawn (device ids; the energy chart adds "(system)"
    /// series with an external meter).</summary>
    public static void AssertDrawn(string dom, string[] console, IReadOnlyDictionary<string, string[]> expected)
    {
        Assert.True(console.Length == 0, "console messages:\n" + string.Join('\n', console));
        Assert.Contains("data-charts-drawn=\"4\"", dom);
        Assert.Contains("data-report-errors=\"0\"", dom);
        Assert.Matches(@"<div id=""report-errors""></div>", dom);
        foreach (var (chart, series) in expected)
        {
            var svg = Regex.Match(dom, $@"<svg[^>]*data-chart=""{chart}""[^>]*>(.*?)</svg>", RegexOptions.Singleline);
            Assert.True(svg.Success, $"chart {chart} missing");
            string open = svg.Value[..svg.Value.IndexOf('>')];
            Assert.Contains("data-drawn=\"true\"", open);
            Assert.Contains($"data-series=\"{string.Join(',', series)}\"", open);
            foreach (string s in series)
            {
                var g = Regex.Match(svg.Groups[1].Value, $@"<g class=""series"" data-series=""{Regex.Escape(s)}"">(.*?)</g>", RegexOptions.Singleline);
                Assert.True(g.Success, $"chart {chart}: no series {s}");
                // Something drawn: a line, a dot, a bar, or (a device without a meter or timestamps) the note saying why.
                Assert.True(Regex.IsMatch(g.Groups[1].Value, @"<(path|circle|rect) [^>]*\b(d=""M[^""]+""|cx=""[\d.]+""|width=""[\d.]+"")")
                            || Regex.IsMatch(g.Groups[1].Value, @"<text class=""note""[^>]*>[^<]+</text>"),
                    $"chart {chart}: series {s} drew nothing: {g.Groups[1].Value}");
            }
        }
    }

    /// <summary>The marks a chart's series drew (paths, circles, rects).</summary>
    public static int Marks(string dom, string chart, string series)
    {
        var svg = Regex.Match(dom, $@"<svg[^>]*data-chart=""{chart}""[^>]*>(.*?)</svg>", RegexOptions.Singleline);
        var g = Regex.Match(svg.Groups[1].Value, $@"<g class=""series"" data-series=""{Regex.Escape(series)}"">(.*?)</g>", RegexOptions.Singleline);
        return Regex.Matches(g.Groups[1].Value, "<(path|circle|rect) ").Count;
    }

    /// <summary>The file fetches nothing: no script, style, image or link from elsewhere.</summary>
    public static void AssertSelfContained(string html)
    {
        Assert.DoesNotMatch(@"(src|href)\s*=\s*[""']?(https?:|//)", html);
        Assert.DoesNotContain("@import", html);
        Assert.DoesNotMatch(@"url\(\s*[""']?(https?:|//)", html);
        Assert.DoesNotContain("fetch(", html);
        Assert.DoesNotContain("XMLHttpRequest", html);
    }
}
