using System.Diagnostics;
using System.Text.Json;
using Serving.Abstractions;
using Serving.Host.Tests.Interop;
using Serving.Host.Tests.Models;

namespace Serving.Host.Tests.Tuning;

/// <summary>
/// <c>bench serve --compare-tuned</c> through the CLI on the tiny model: with no profile it tunes first, then runs the
/// same workload on an untuned and a tuned in-process server, and writes both runs with the limits each side used.
/// Speeds are only checked to be measured, never compared (docs/testing.md); argument conflicts fail in one line.
/// </summary>
[Collection("tiny")]
[Trait("Category", "Slow")] // the CLI as a child process, a fast tuning and two servers
public sealed class BenchServeTunedTests(TinyModelFixture fixture) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "serving-bench-serve-tuned-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private async Task<(int Exit, string Stdout, string Stderr)> RunAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Serving.Host.dll"));
        foreach (string a in args.Concat(["--plugins", Path.Combine(AppContext.BaseDirectory, "plugins")]))
            psi.ArgumentList.Add(a);
        psi.Environment["SERVING_TUNE_CACHE"] = Path.Combine(_dir, "cache");
        return await ChildProcess.RunToEndAsync(psi, TimeSpan.FromMinutes(4));
    }

    [Fact]
    public async Task RunsTheWorkloadUntunedAndTunedAndReportsBoth()
    {
        Directory.CreateDirectory(_dir);
        string json = Path.Combine(_dir, "serve.json");
        var (exit, stdout, stderr) = await RunAsync("bench", "serve", "--compare-tuned", "--device", "cpu:0", "--model", fixture.PathOf(DataType.Q8_0),
            "--clients", "4", "--requests", "6", "--warmup", "1", "--prompt-tokens", "8", "--max-tokens", "4", "--json", json);
        Assert.True(exit == 0, $"exit {exit}: {stderr}");
        Assert.Contains("tuned cpu:0 in", stderr); // no profile yet: measured first
        Assert.Contains("Tuned against untuned", stdout);
        Assert.Matches(@"tuned ÷ untuned output tok/s [\d.]+×, TPOT p50 [\d.]+×", stdout);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        Assert.Equal(16, root.GetProperty("untuned_max_batch").GetInt32());
        Assert.True(root.GetProperty("tuned_max_batch").GetInt32() >= 1);
        var runs = root.GetProperty("runs").EnumerateArray().ToList();
        Assert.Equal(["untuned", "tuned"], runs.Select(r => r.GetProperty("side").GetString()));
        foreach (var run in runs)
        {
            Assert.Equal(6, run.GetProperty("result").GetProperty("completed").GetInt32());
            Assert.True(run.GetProperty("result").GetProperty("output_throughput").GetDouble() > 0);
            // The server's memory beside what it must hold (issue 11): RSS peak ≥ now > 0, weights and KV reported.
            var server = run.GetProperty("result").GetProperty("server");
            Assert.True(server.GetProperty("weights_bytes").GetInt64() > 0);
            Assert.True(server.GetProperty("kv_cache_bytes").GetInt64() > 0);
            Assert.True(server.GetProperty("peak_resident_bytes").GetInt64() >= server.GetProperty("resident_bytes").GetInt64());
            Assert.True(server.GetProperty("resident_bytes").GetInt64() > 0);
        }
    }

    [Fact]
    public async Task ConflictingOptionsFailInOneLine()
    {
        var (exit, _, stderr) = await RunAsync("bench", "serve", "--compare-tuned", "--port", "7411");
        Assert.Equal(2, exit);
        Assert.Contains("--compare-tuned starts its own servers", stderr);
        (exit, _, stderr) = await RunAsync("bench", "serve", "--compare-tuned", "--tiers", "small", "--model", "small=" + fixture.PathOf(DataType.Q8_0));
        Assert.Equal(2, exit);
        Assert.Contains("--compare-tuned compares one model", stderr);
    }
}
