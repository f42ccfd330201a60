using Serving.Host.Benchmarks;

namespace Serving.Host.Tests.Client;

/// <summary>The core of <c>bench serve</c> against the in-process server: counts and consistency, never speed.</summary>
[Collection("server")]
[Trait("Category", "Slow")]
public sealed class ServeBenchmarkTests(ServerFixture server)
{
    [Fact]
    public async Task A_small_run_counts_every_request_and_orders_its_percentiles()
    {
        var options = new ServeBenchOptions
        {
            Host = "127.0.0.1", Port = server.Port, Token = ServerFixture.Token,
            Clients = 4, Requests = 8, PromptTokens = 24, MaxTokens = 16, WarmupRequests = 0, Seed = 5,
        };
        var progress = new List<ServeBenchProgress>();
        var report = await ServeBenchmark.RunAsync(options, new SyncProgress(progress.Add));

        Assert.Equal(8, report.Completed + report.Failed);
        Assert.Equal(0, report.Failed);
        Assert.Equal(8 * 24, report.TotalInputTokens);
        Assert.InRange(report.TotalOutputTokens, 8, 8 * 16); // each request makes ≥ 1 token, at most max_tokens
        Assert.Equal(8, report.FinishReasons.Values.Sum());
        Assert.Equal(8, report.E2el.Count);
        Assert.Equal(8, report.Ttft.Count);
        // Every token after a request's first is one inter-token gap.
        Assert.Equal(report.TotalOutputTokens - 8, report.Itl.Count);
        foreach (var s in new[] { report.Ttft, report.Tpot, report.Itl, report.E2el }.Where(s => s.Count > 0))
        {
            Assert.True(s.P50 <= s.P90 && s.P90 <= s.P99, $"percentiles out of order: {s}");
            Assert.Equal(s.P50, s.Median);
            Assert.True(s.Mean >= 0);
        }
        // Each request's first token comes before its end.
        Assert.True(report.Ttft.Mean <= report.E2el.Mean);
        Assert.True(report.DurationSeconds > 0 && report.OutputThroughput > 0);
        Assert.NotNull(report.Server);
        Assert.True(report.Server.Steps > 0);
        // A mean recovered from the server's counters before and after the run: exact up to rounding.
        Assert.InRange(report.Server.MeanBatchSequences, 1 - 1e-9, 4 + 1e-9);
        Assert.Equal(8, progress[^1].Done);

        using var json = new MemoryStream();
        report.WriteJson(json);
        using var doc = System.Text.Json.JsonDocument.Parse(json.ToArray());
        Assert.Equal(8, doc.RootElement.GetProperty("completed").GetInt32());
        // The JSON rounds to 4 places; compare within that, not by rounding both sides (122.8125 vs 122.812500001 broke a CI run).
        Assert.Equal(report.Itl.P99, doc.RootElement.GetProperty("p99_itl_ms").GetDouble(), tolerance: 0.00051);
        var text = new StringWriter();
        report.WriteText(text);
        Assert.Contains("Output token throughput (tok/s):", text.ToString());
    }

    [Fact]
    public async Task Refused_requests_are_counted_as_failed_with_their_reason()
    {
        // Prompts longer than the context: every request is refused, none crashes the run.
        var options = new ServeBenchOptions
        {
            Host = "127.0.0.1", Port = server.Port, Token = ServerFixture.Token,
            Clients = 2, Requests = 3, PromptTokens = 5000, MaxTokens = 4, WarmupRequests = 0,
        };
        var report = await ServeBenchmark.RunAsync(options);
        Assert.Equal((0, 3), (report.Completed, report.Failed));
        Assert.Equal(3, report.FailedReasons["context_exceeded"]);
        Assert.Equal(0, report.E2el.Count);
        Assert.True(double.IsNaN(report.Ttft.P99));
    }

    [Fact]
    public void Percentiles_interpolate_between_ranks()
    {
        var s = LatencySummary.Of([4, 1, 3, 2]);
        // Sorted 1 2 3 4: rank = p/100 × 3, so p50 → 2.5, p90 → 3.7, p99 → 3.97 (numpy's default "linear").
        Assert.Equal(2.5, s.Mean, 9);
        Assert.Equal(2.5, s.P50, 9);
        Assert.Equal(3.7, s.P90, 9);
        Assert.Equal(3.97, s.P99, 9);
        Assert.Equal(4, s.Count);
    }

    private sealed class SyncProgress(Action<ServeBenchProgress> report) : IProgress<ServeBenchProgress>
    {
        private readonly Lock _gate = new();

        public void Report(ServeBenchProgress value)
        {
            lock (_gate) report(value);
        }
    }
}
