using System.Diagnostics;
using System.Text.Json;
using Serving.Abstractions;
using Serving.Host.Tests.Interop;
using Serving.Host.Tests.Models;

namespace Serving.Host.Tests.Tuning;

/// <summary>
/// <c>bench tuned</c> through the CLI on the tiny model: with no profile it tunes first and saves one in the cache
/// folder, runs both sides every round, and a second run reuses the saved profile instead of tuning again. Speeds are
/// only checked to be measured (positive), never compared (docs/testing.md).
/// </summary>
[Collection("tiny")]
[Trait("Category", "Slow")] // the CLI as a child process, a fast tuning and four model loads
public sealed class BenchTunedTests(TinyModelFixture fixture) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "serving-bench-tuned-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private async Task<(string Stdout, string Stderr, JsonElement Json)> RunAsync(string json)
    {
        var psi = new ProcessStartInfo("dotnet");
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "Serving.Host.dll"), "bench", "tuned", "--device", "cpu:0",
                     "--model", fixture.PathOf(DataType.Q8_0), "--tokens", "4", "--rounds", "1", "--json", json,
                     "--plugins", Path.Combine(AppContext.BaseDirectory, "plugins") })
            psi.ArgumentList.Add(a);
        psi.Environment["SERVING_TUNE_CACHE"] = Path.Combine(_dir, "cache");
        var (exit, stdout, stderr) = await ChildProcess.RunToEndAsync(psi, TimeSpan.FromMinutes(4));
        Assert.True(exit == 0, $"exit {exit}: {stderr}");
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        return (stdout, stderr, doc.RootElement.Clone());
    }

    [Fact]
    public async Task TunesOnceThenComparesTunedAndUntunedDecodeInOneRun()
    {
        Directory.CreateDirectory(_dir);
        var (stdout, stderr, json) = await RunAsync(Path.Combine(_dir, "first.json"));
        Assert.Contains("tuned cpu:0 in", stderr); // DeviceTuning.Measure: "tuned cpu:0 in N s; profile saved to …"
        Assert.Single(Directory.GetFiles(Path.Combine(_dir, "cache"), "*.json"));
        Assert.Matches(@"tiny-q8_0\.gguf\s+cpu:0\s+[\d.]+ tok/s\s+[\d.]+ tok/s\s+[\d.]+×", stdout);
        foreach (string side in new[] { "untunedTokensPerSecond", "tunedTokensPerSecond" })
        {
            var rates = json.GetProperty(side).EnumerateArray().Select(e => e.GetDouble()).ToList();
            Assert.Single(rates);
            Assert.True(rates[0] > 0 && double.IsFinite(rates[0]), $"{side}: {rates[0]}");
        }
        Assert.Equal("fast", json.GetProperty("profileMode").GetString());

        var (_, again, _) = await RunAsync(Path.Combine(_dir, "second.json"));
        Assert.DoesNotContain("tuned cpu:0 in", again);
        Assert.Contains("profile: fast tuning", again);
    }
}
