using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Serving.Client;
using Serving.Host.Cli;
using Serving.Protocol.Rpc;

namespace Serving.Host.Benchmarks;

/// <summary>What <c>bench serve</c> runs: a load of synthetic requests against one server.</summary>
internal sealed record ServeBenchOptions
{
    /// <summary>Server address.</summary>
    public required string Host { get; init; }

    /// <summary>Server port.</summary>
    public required int Port { get; init; }

    /// <summary>Shared secret for <c>auth</c>, or null.</summary>
    public string? Token { get; init; }

    /// <summary>Concurrent clients, each with its own connection (vLLM's max concurrency).</summary>
    public int Clients { get; init; } = 16;

    /// <summary>Requests in the pool the clients draw from.</summary>
    public int Requests { get; init; } = 200;

    /// <summary>Exact prompt length of every request, in tokens.</summary>
    public int PromptTokens { get; init; } = 128;

    /// <summary>max_tokens of every request (a request may end earlier at the model's end-of-generation token).</summary>
    public int MaxTokens { get; init; } = 128;

    /// <summary>Poisson arrival rate in requests/s; null = infinite (every client busy all the time).</summary>
    public double? Rate { get; init; }

    /// <summary>Seed of the prompts and arrival times.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Requests run (one per client, concurrently) before measuring, not counted: JIT, page faults, thread pools.</summary>
    public int WarmupRequests { get; init; } = 16;

    /// <summary>The <c>model</c> every request names (a tier, or "auto"); null = the server's default.</summary>
    public string? Model { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field.</summary>
    public void Validate()
    {
        if (Clients is < 1 or > 1024) throw new ArgumentException($"--clients {Clients} out of range [1, 1024]");
        if (Requests is < 1 or > 1_000_000) throw new ArgumentException($"--requests {Requests} out of range [1, 1000000]");
        if (PromptTokens is < 1 or > 1_000_000) throw new ArgumentException($"--prompt-tokens {PromptTokens} out of range");
        if (MaxTokens is < 1 or > 1_000_000) throw new ArgumentException($"--max-tokens {MaxTokens} out of range");
        if (Rate is { } r && !(r > 0 && double.IsFinite(r))) throw new ArgumentException($"--rate {r} must be a positive number of requests/s");
        if (WarmupRequests < 0) throw new ArgumentException($"--warmup {WarmupRequests} must be ≥ 0");
    }
}

/// <summary>Progress of a running benchmark (for the progress line).</summary>
internal readonly record struct ServeBenchProgress(int Done, int Failed, int Total, int Running, long OutputTokens, TimeSpan Elapsed);

/// <summary>Mean, median, standard deviation and percentiles of one latency metric in ms (NaN when there are no samples).</summary>
internal sealed record LatencySummary(int Count, double Mean, double Median, double Std, double P50, double P90, double P99)
{
    /// <summary>Summarizes <paramref name="samples"/> (sorted in place). Percentiles interpolate linearly between ranks, as numpy's default.</summary>
    public static LatencySummary Of(List<double> samples)
    {
        if (samples.Count == 0) return new(0, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN);
        samples.Sort();
        double mean = samples.Average();
        double variance = samples.Sum(x => (x - mean) * (x - mean)) / samples.Count;
        return new(samples.Count, mean, Percentile(samples, 50), Math.Sqrt(variance),
            Percentile(samples, 50), Percentile(samples, 90), Percentile(samples, 99));
    }

    /// <summary>The <paramref name="p"/>-th percentile of sorted <paramref name="sorted"/>, linear between closest ranks.</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double p)
    {
        double rank = p / 100 * (sorted.Count - 1);
        int lo = (int)Math.Floor(rank), hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }
}

/// <summary>What the server's own counters say about the run (differences of <c>metrics</c> before and after).</summary>
/// <param name="Steps">Forward steps run during the benchmark.</param>
/// <param name="MeanBatchSequences">Mean sequences per step during the benchmark.</param>
/// <param name="MeanBatchTokens">Mean tokens per step during the benchmark.</param>
/// <param name="PrefixCacheHitTokens">Prompt tokens served from the prefix cache.</param>
/// <param name="Preemptions">Sequences preempted for lack of KV blocks.</param>
/// <param name="RefusedOverloaded">Requests the scheduler refused as overloaded.</param>
/// <param name="ResidentBytes">The server process's resident set at the end of the run (0 where not reported).</param>
/// <param name="PeakResidentBytes">Its peak resident set since it started (VmHWM on Linux).</param>
/// <param name="WeightBytes">Bytes of the weights it serves, every tier.</param>
/// <param name="KvCacheBytes">Bytes of its KV caches as allocated, every tier.</param>
internal sealed record ServerRunMetrics(long Steps, double MeanBatchSequences, double MeanBatchTokens, long PrefixCacheHitTokens,
    long Preemptions, long RefusedOverloaded, long ResidentBytes = 0, long PeakResidentBytes = 0, long WeightBytes = 0, long KvCacheBytes = 0);

/// <summary>The result of a <c>bench serve</c> run, with vLLM's metric names in <see cref="WriteJson"/>.</summary>
internal sealed record ServeBenchReport(
    ServeBenchOptions Options,
    string Model,
    string Device,
    double DurationSeconds,
    int Completed,
    int Failed,
    IReadOnlyDictionary<string, int> FailedReasons,
    IReadOnlyDictionary<string, int> FinishReasons,
    long TotalInputTokens,
    long TotalOutputTokens,
    LatencySummary Ttft,
    LatencySummary Tpot,
    LatencySummary Itl,
    LatencySummary E2el,
    ServerRunMetrics? Server,
    IReadOnlyDictionary<string, int>? AnsweredByTier = null,
    IReadOnlyDictionary<string, int>? TierReasons = null)
{
    /// <summary>Share of completed requests each tier answered ("small 62 %, large 38 %"), or "" from a server without tiers.</summary>
    public string TierShares => AnsweredByTier is { Count: > 0 } by && Completed > 0
        ? string.Join(", ", by.Select(kv => $"{kv.Key} {100.0 * kv.Value / Completed:0} %"))
        : "";

    /// <summary>Completed requests per second of benchmark duration.</summary>
    public double RequestThroughput => Completed / DurationSeconds;

    /// <summary>Generated tokens per second (completed requests only).</summary>
    public double OutputThroughput => TotalOutputTokens / DurationSeconds;

    /// <summary>Prompt plus generated tokens per second (completed requests only).</summary>
    public double TotalTokenThroughput => (TotalInputTokens + TotalOutputTokens) / DurationSeconds;

    /// <summary>Prints the summary the way vLLM's benchmark_serving.py does, then a percentile table.</summary>
    public void WriteText(TextWriter w)
    {
        var console = Terminal.For(w);
        static string F(double v) => double.IsNaN(v) ? "n/a" : v.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture);
        void Line(string label, string value) => w.WriteLine($"{label,-40} {value}");
        w.WriteLine("============ Serving Benchmark Result ============");
        Line("Model / device:", $"{Model} on {Device}");
        if (Options.Model is { } requested) Line("Requests name model:", requested);
        if (TierShares.Length > 0) Line("Answered by tier:", TierShares);
        if (TierReasons is { Count: > 0 } reasons) Line("Tier reasons:", string.Join(", ", reasons.Select(kv => $"{kv.Key}: {kv.Value}")));
        Line("Clients (max concurrency):", Options.Clients.ToString());
        Line("Request rate (req/s):", Options.Rate is { } r ? F(r) : "inf");
        Line("Successful requests:", Completed.ToString());
        Line("Failed requests:", Failed == 0 ? "0" : $"{Failed} ({string.Join(", ", FailedReasons.Select(kv => $"{kv.Key}: {kv.Value}"))})");
        Line("Finish reasons:", string.Join(", ", FinishReasons.Select(kv => $"{kv.Key}: {kv.Value}")));
        Line("Benchmark duration (s):", F(DurationSeconds));
        Line("Total input tokens:", TotalInputTokens.ToString());
        Line("Total generated tokens:", TotalOutputTokens.ToString());
        Line("Request throughput (req/s):", F(RequestThroughput));
        Line("Output token throughput (tok/s):", F(OutputThroughput));
        Line("Total token throughput (tok/s):", F(TotalTokenThroughput));
        var table = Tables.Create(["latency (ms)", "mean", "median", "p50", "p90", "p99", "std", "samples"], numeric: true);
        foreach (var (name, s) in Metrics())
            table.AddCells(name, F(s.Mean), F(s.Median), F(s.P50), F(s.P90), F(s.P99), F(s.Std), s.Count.ToString());
        w.WriteLine("---------------------- Latency ----------------------");
        console.WriteTable(table);
        if (Server is { } m)
        {
            w.WriteLine("---------------------- Server -----------------------");
            Line("Steps:", m.Steps.ToString());
            Line("Mean batch (sequences / tokens per step):", $"{F(m.MeanBatchSequences)} / {F(m.MeanBatchTokens)}");
            Line("Prefix cache hit tokens:", m.PrefixCacheHitTokens.ToString());
            Line("Preemptions / refused overloaded:", $"{m.Preemptions} / {m.RefusedOverloaded}");
            if (m.PeakResidentBytes > 0)
            {
                static string Mib(long b) => (b / 1048576.0).ToString("0", System.Globalization.CultureInfo.InvariantCulture);
                Line("Server RSS now / peak (MiB):", $"{Mib(m.ResidentBytes)} / {Mib(m.PeakResidentBytes)}");
                Line("Weights + KV cache (MiB):", $"{Mib(m.WeightBytes)} + {Mib(m.KvCacheBytes)} = {Mib(m.WeightBytes + m.KvCacheBytes)}, " +
                     $"peak RSS − both {Mib(m.PeakResidentBytes - m.WeightBytes - m.KvCacheBytes)}");
            }
        }
        w.WriteLine("=====================================================");
    }

    private (string Name, LatencySummary Summary)[] Metrics() =>
        [("TTFT", Ttft), ("TPOT (excl. 1st token)", Tpot), ("ITL", Itl), ("E2E latency", E2el)];

    /// <summary>Writes the report as JSON with vLLM's keys (mean_ttft_ms, p99_itl_ms, output_throughput, …); NaN as null.</summary>
    public void WriteJson(Stream output)
    {
        using var j = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = true });
        void Number(string name, double v)
        {
            if (double.IsFinite(v)) j.WriteNumber(name, Math.Round(v, 4));
            else j.WriteNull(name);
        }
        j.WriteStartObject();
        j.WriteString("backend", "serving");
        j.WriteString("model_id", Model);
        j.WriteString("device", Device);
        if (Options.Model is { } requested) j.WriteString("requested_model", requested);
        if (AnsweredByTier is { Count: > 0 } by)
        {
            j.WriteStartObject("answered_by_tier");
            foreach (var (tier, count) in by) j.WriteNumber(tier, count);
            j.WriteEndObject();
        }
        if (TierReasons is { Count: > 0 } reasons)
        {
            j.WriteStartObject("tier_reasons");
            foreach (var (why, count) in reasons) j.WriteNumber(why, count);
            j.WriteEndObject();
        }
        j.WriteNumber("max_concurrency", Options.Clients);
        if (Options.Rate is { } rate) j.WriteNumber("request_rate", rate); else j.WriteString("request_rate", "inf");
        j.WriteNumber("num_prompts", Options.Requests);
        j.WriteNumber("random_input_len", Options.PromptTokens);
        j.WriteNumber("random_output_len", Options.MaxTokens);
        j.WriteNumber("seed", Options.Seed);
        Number("duration", DurationSeconds);
        j.WriteNumber("completed", Completed);
        j.WriteNumber("failed", Failed);
        j.WriteStartObject("failed_reasons");
        foreach (var (k, v) in FailedReasons) j.WriteNumber(k, v);
        j.WriteEndObject();
        j.WriteStartObject("finish_reasons");
        foreach (var (k, v) in FinishReasons) j.WriteNumber(k, v);
        j.WriteEndObject();
        j.WriteNumber("total_input_tokens", TotalInputTokens);
        j.WriteNumber("total_output_tokens", TotalOutputTokens);
        Number("request_throughput", RequestThroughput);
        Number("output_throughput", OutputThroughput);
        Number("total_token_throughput", TotalTokenThroughput);
        foreach (var (key, s) in new[] { ("ttft", Ttft), ("tpot", Tpot), ("itl", Itl), ("e2el", E2el) })
        {
            Number($"mean_{key}_ms", s.Mean);
            Number($"median_{key}_ms", s.Median);
            Number($"std_{key}_ms", s.Std);
            Number($"p50_{key}_ms", s.P50);
            Number($"p90_{key}_ms", s.P90);
            Number($"p99_{key}_ms", s.P99);
        }
        if (Server is { } m)
        {
            j.WriteStartObject("server");
            j.WriteNumber("steps", m.Steps);
            Number("mean_batch_sequences", m.MeanBatchSequences);
            Number("mean_batch_tokens", m.MeanBatchTokens);
            j.WriteNumber("prefix_cache_hit_tokens", m.PrefixCacheHitTokens);
            j.WriteNumber("preemptions", m.Preemptions);
            j.WriteNumber("refused_overloaded", m.RefusedOverloaded);
            j.WriteNumber("resident_bytes", m.ResidentBytes);
            j.WriteNumber("peak_resident_bytes", m.PeakResidentBytes);
            j.WriteNumber("weights_bytes", m.WeightBytes);
            j.WriteNumber("kv_cache_bytes", m.KvCacheBytes);
            j.WriteEndObject();
        }
        j.WriteEndObject();
    }
}

/// <summary>
/// The core of <c>bench serve</c>, after vLLM's <c>benchmark_serving.py</c>: N clients, each on its own
/// connection, draw requests from a shared pool; prompts are random token ids of an exact length (sent as
/// <c>tokens</c>, so no tokenizer round trip changes the length), every response is streamed, and each request's
/// TTFT, inter-token gaps and end-to-end latency are measured at the client from when its request is sent.
/// </summary>
internal static class ServeBenchmark
{
    private sealed record Sample(bool Ok, string? Failure, string? FinishReason, int OutputTokens, double TtftMs, double E2eMs, List<double> ItlMs,
        string? Tier = null, string? TierReason = null);

    /// <summary>Runs the benchmark and returns its report. Refused or failed requests are counted with their reason, never thrown.</summary>
    /// <exception cref="ArgumentException">Bad options.</exception>
    /// <exception cref="System.Net.Sockets.SocketException">The server cannot be reached.</exception>
    public static async Task<ServeBenchReport> RunAsync(ServeBenchOptions options, IProgress<ServeBenchProgress>? progress = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();

        var clients = new List<ServingClient>(options.Clients);
        try
        {
            for (int i = 0; i < options.Clients; i++)
                clients.Add(await ServingClient.ConnectAsync(options.Host, options.Port, options.Token, ct).ConfigureAwait(false));
            var info = await clients[0].InfoAsync(ct).ConfigureAwait(false);
            var model = (await clients[0].ListModelsAsync(ct).ConfigureAwait(false)).FirstOrDefault()
                ?? throw new InvalidOperationException("the server lists no model");

            var random = new Random(unchecked((int)options.Seed ^ (int)(options.Seed >> 32)));
            var prompts = new int[options.Requests][];
            for (int i = 0; i < prompts.Length; i++) prompts[i] = RandomPrompt(random, options.PromptTokens, model.Vocab);
            double[] arrivals = ArrivalTimes(random, options.Requests, options.Rate);

            if (options.WarmupRequests > 0)
            {
                // Distinct prompts (not the measured ones, so they seed no prefix cache), short outputs.
                var warm = Enumerable.Range(0, options.WarmupRequests)
                    .Select(i => RandomPrompt(random, options.PromptTokens, model.Vocab)).ToArray();
                await Task.WhenAll(clients.Select(async (c, ci) =>
                {
                    for (int i = ci; i < warm.Length; i += clients.Count)
                        await RunOneAsync(c, warm[i], Math.Min(8, options.MaxTokens), options.Model, ct).ConfigureAwait(false);
                })).ConfigureAwait(false);
            }

            var before = await clients[0].MetricsAsync(ct).ConfigureAwait(false);
            var samples = new Sample[options.Requests];
            int done = 0, failed = 0, running = 0;
            long outputTokens = 0;
            var free = Channel.CreateBounded<ServingClient>(options.Clients);
            foreach (var c in clients) free.Writer.TryWrite(c);

            var start = Stopwatch.GetTimestamp();
            using var ticker = progress is null ? null : new Timer(_ => progress.Report(new ServeBenchProgress(
                Volatile.Read(ref done), Volatile.Read(ref failed), options.Requests, Volatile.Read(ref running),
                Interlocked.Read(ref outputTokens), Stopwatch.GetElapsedTime(start))), null, 500, 500);

            var inFlight = new List<Task>(options.Requests);
            for (int i = 0; i < options.Requests; i++)
            {
                if (options.Rate is not null)
                {
                    var wait = TimeSpan.FromSeconds(arrivals[i]) - Stopwatch.GetElapsedTime(start);
                    if (wait > TimeSpan.Zero) await Task.Delay(wait, ct).ConfigureAwait(false);
                }
                var client = await free.Reader.ReadAsync(ct).ConfigureAwait(false);
                int index = i;
                Interlocked.Increment(ref running);
                inFlight.Add(Task.Run(async () =>
                {
                    try
                    {
                        var s = await RunOneAsync(client, prompts[index], options.MaxTokens, options.Model, ct).ConfigureAwait(false);
                        samples[index] = s;
                        if (s.Ok) Interlocked.Add(ref outputTokens, s.OutputTokens);
                        else Interlocked.Increment(ref failed);
                    }
                    finally
                    {
                        Interlocked.Increment(ref done);
                        Interlocked.Decrement(ref running);
                        free.Writer.TryWrite(client);
                    }
                }, CancellationToken.None));
            }
            await Task.WhenAll(inFlight).ConfigureAwait(false);
            double duration = Stopwatch.GetElapsedTime(start).TotalSeconds;
            progress?.Report(new ServeBenchProgress(done, failed, options.Requests, 0, Interlocked.Read(ref outputTokens), TimeSpan.FromSeconds(duration)));

            ServerRunMetrics? server = null;
            // A connection lost during the run cannot ask; any surviving one can.
            if (clients.FirstOrDefault(c => c.IsConnected) is { } alive)
                server = Difference(before, await alive.MetricsAsync(ct).ConfigureAwait(false));
            return Summarize(options, info.Model, info.Device, duration, samples, server);
        }
        finally
        {
            foreach (var c in clients) await c.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A prompt of exactly <paramref name="length"/> random ids. Ids come from the middle of the vocabulary: the
    /// first 259 (llama's control and byte-fallback tokens) and the last 256 (where BPE vocabularies keep their
    /// special tokens) are skipped, so a prompt is ordinary text to the model.
    /// </summary>
    private static int[] RandomPrompt(Random random, int length, int vocab)
    {
        int lo = vocab > 1024 ? 259 : 0, hi = vocab > 1024 ? vocab - 256 : vocab;
        var ids = new int[length];
        for (int i = 0; i < ids.Length; i++) ids[i] = random.Next(lo, hi);
        return ids;
    }

    /// <summary>Arrival offsets in seconds: all 0 for an infinite rate, else a Poisson process (exponential gaps of mean 1/rate).</summary>
    private static double[] ArrivalTimes(Random random, int count, double? rate)
    {
        var times = new double[count];
        if (rate is not { } r) return times;
        double t = 0;
        for (int i = 0; i < count; i++)
        {
            times[i] = t;
            t += -Math.Log(1 - random.NextDouble()) / r;
        }
        return times;
    }

    private static async Task<Sample> RunOneAsync(ServingClient client, int[] prompt, int maxTokens, string? model, CancellationToken ct)
    {
        var itl = new List<double>(maxTokens);
        long sent = Stopwatch.GetTimestamp();
        long first = 0, last = 0;
        try
        {
            // Greedy: the cheapest sampler, so the benchmark measures the model and the scheduler.
            var options = new GenerateOptions { Tokens = prompt, MaxTokens = maxTokens, Temperature = 0, Model = model };
            await foreach (var e in client.GenerateStreamAsync(options, ct).ConfigureAwait(false))
            {
                if (e.Result is { } result)
                {
                    double e2e = Stopwatch.GetElapsedTime(sent, e.Timestamp).TotalMilliseconds;
                    double ttft = first == 0 ? double.NaN : Stopwatch.GetElapsedTime(sent, first).TotalMilliseconds;
                    return result.FinishReason == FinishReasons.Cancelled
                        ? new Sample(false, RpcErrorCodes.Cancelled, null, 0, double.NaN, e2e, itl)
                        : new Sample(true, null, result.FinishReason, result.Usage.CompletionTokens, ttft, e2e, itl, result.Tier, result.TierReason);
                }
                if (e.TokenId < 0) continue; // text released at the end, not a token
                if (first == 0) first = e.Timestamp;
                else itl.Add(Stopwatch.GetElapsedTime(last, e.Timestamp).TotalMilliseconds);
                last = e.Timestamp;
            }
            return new Sample(false, "no_result", null, 0, double.NaN, double.NaN, itl);
        }
        catch (RpcException e)
        {
            return new Sample(false, e.Code, null, 0, double.NaN, double.NaN, itl);
        }
        catch (IOException)
        {
            // The connection is gone; this client's later requests fail the same way, fast (counted, not retried).
            return new Sample(false, "connection_lost", null, 0, double.NaN, double.NaN, itl);
        }
        catch (Exception e) when (e is InvalidDataException or StreamOverflowException)
        {
            return new Sample(false, "client_error", null, 0, double.NaN, double.NaN, itl);
        }
    }

    private static ServerRunMetrics Difference(IReadOnlyDictionary<string, double> before, IReadOnlyDictionary<string, double> after)
    {
        double Get(IReadOnlyDictionary<string, double> m, string key) => m.TryGetValue(key, out double v) ? v : 0;
        double D(string key) => Get(after, key) - Get(before, key);
        double steps = D("steps");
        // The server reports running means; over this run: Δ(mean × steps) / Δsteps.
        double Mean(string key) => steps <= 0 ? double.NaN
            : (Get(after, key) * Get(after, "steps") - Get(before, key) * Get(before, "steps")) / steps;
        return new ServerRunMetrics((long)steps, Mean("mean_batch_sequences"), Mean("mean_batch_tokens"),
            (long)D("prefix_cache_hit_tokens"), (long)D("preemptions"), (long)D("refused_overloaded"),
            (long)Get(after, "working_set_bytes"), (long)Get(after, "peak_working_set_bytes"), (long)Get(after, "weights_bytes"), (long)Get(after, "kv_cache_bytes"));
    }

    private static ServeBenchReport Summarize(ServeBenchOptions options, string model, string device, double duration,
        Sample[] samples, ServerRunMetrics? server)
    {
        List<double> ttft = [], tpot = [], itl = [], e2el = [];
        var failures = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var finishes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var byTier = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var byReason = new SortedDictionary<string, int>(StringComparer.Ordinal);
        int completed = 0;
        long output = 0;
        foreach (var s in samples)
        {
            if (!s.Ok)
            {
                string reason = s.Failure ?? "unknown";
                failures[reason] = failures.GetValueOrDefault(reason) + 1;
                continue;
            }
            completed++;
            output += s.OutputTokens;
            finishes[s.FinishReason!] = finishes.GetValueOrDefault(s.FinishReason!) + 1;
            if (s.Tier is { } tier) byTier[tier] = byTier.GetValueOrDefault(tier) + 1;
            if (s.TierReason is { } why) byReason[why] = byReason.GetValueOrDefault(why) + 1;
            e2el.Add(s.E2eMs);
            if (!double.IsNaN(s.TtftMs)) ttft.Add(s.TtftMs);
            // vLLM's TPOT: the mean gap after the first token, per request with at least two tokens.
            if (s.OutputTokens > 1 && !double.IsNaN(s.TtftMs)) tpot.Add((s.E2eMs - s.TtftMs) / (s.OutputTokens - 1));
            itl.AddRange(s.ItlMs);
        }
        return new ServeBenchReport(options, model, device, duration, completed, samples.Length - completed, failures, finishes,
            (long)completed * options.PromptTokens, output, LatencySummary.Of(ttft), LatencySummary.Of(tpot),
            LatencySummary.Of(itl), LatencySummary.Of(e2el), server, byTier, byReason);
    }
}
