using System.CommandLine;
using System.Net;
using Serving.Engine.Models;
using Serving.Engine.Scheduling;
using Serving.Host.Benchmarks;
using Serving.Host.Cli;
using Serving.Host.Serve;

namespace Serving.Host.Commands;

/// <summary>
/// <c>bench serve</c>: serving throughput and latency under concurrent load, like vLLM's <c>bench serve</c>.
/// Against a running server (<c>--port</c>), or against one started in process on <c>--model</c>/<c>--device</c>
/// (weights resident unless <c>--mmap</c>). Prints vLLM's summary and a latency table; <c>--json</c> writes the
/// same numbers under vLLM's key names.
/// </summary>
internal static class BenchServeCommand
{
    public static Command Create()
    {
        var command = new Command("serve", "Serving benchmark: N concurrent streaming clients; TTFT, TPOT, ITL, E2E percentiles and tok/s");
        var clients = new Option<int>("--clients", "-c") { Description = "Concurrent clients, each on its own connection", DefaultValueFactory = _ => 16 };
        var requests = new Option<int>("--requests", "-n") { Description = "Requests in total, drawn by the clients from one pool", DefaultValueFactory = _ => 200 };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Exact prompt length (random token ids)", DefaultValueFactory = _ => 128 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "max_tokens per request (a request may end sooner at end-of-generation)", DefaultValueFactory = _ => 128 };
        var rate = new Option<double?>("--rate") { Description = "Poisson arrival rate in requests/s (default: infinite, every client always busy)" };
        var host = new Option<string>("--host") { Description = "Server address (with --port)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int?>("--port") { Description = "Port of a running server; without it a server is started in process on --model" };
        var tokenFile = new Option<string?>("--token-file") { Description = "File holding the server's shared secret" };
        var seed = new Option<ulong>("--seed") { Description = "Seed of prompts and arrival times", DefaultValueFactory = _ => 1 };
        var warmup = new Option<int?>("--warmup") { Description = "Unmeasured warm-up requests (default: one per client, at least 4)" };
        var json = new Option<string?>("--json") { Description = "Also write the results as JSON (vLLM's key names) to this file" };
        var model = TierOptions.Models();
        var tiers = new Option<string?>("--tiers")
        {
            Description = "Comma-separated models to run the same workload against, one after another (e.g. small,large,auto): per tier and for auto, " +
                          "throughput, TTFT/TPOT percentiles and the share each tier answered, then a comparison table",
        };
        var tpot = new Option<double>("--tpot-ms") { Description = "In-process server with tiers: each tier's TPOT target for shedding, ms (0 = none)", DefaultValueFactory = _ => 0 };
        var probe = TierOptions.ProbeTokens();
        var minLogProb = TierOptions.MinLogProb();
        var maxEntropy = TierOptions.MaxEntropy();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var maxBatch = new Option<int>("--max-batch") { Description = "In-process server: most sequences per step", DefaultValueFactory = _ => 16 };
        var mmap = new Option<bool>("--mmap") { Description = "In-process server: serve weights from the mapped file instead of resident memory" };
        var kvType = CommonOptions.KvType();
        var compareTuned = new Option<bool>("--compare-tuned")
        {
            Description = "In-process server: run the workload with the untuned defaults (--max-batch, a 256-token budget, default kernels) and with the device's " +
                          "tuning profile (measured first when there is none), in alternating rounds, and compare (docs/tuner.md)",
        };
        var rounds = new Option<int>("--rounds") { Description = "With --compare-tuned: rounds, each running both sides once", DefaultValueFactory = _ => 1 };
        var fullTune = new Option<bool>("--full-tune") { Description = "With --compare-tuned and no profile yet: tune in full mode instead of fast mode" };
        foreach (var o in new Option[] { clients, requests, promptTokens, maxTokens, rate, host, port, tokenFile, seed, warmup, json, model, device, threads, maxBatch, mmap, kvType,
                     tiers, tpot, probe, minLogProb, maxEntropy, compareTuned, rounds, fullTune })
            command.Options.Add(o);

        command.SetAction(async (parse, cancel) =>
        {
            string? token = null;
            if (parse.GetValue(tokenFile) is { } tf)
            {
                if (!File.Exists(tf)) return CliErrors.Fail($"token file not found: {tf}");
                token = File.ReadAllText(tf).Trim();
            }
            int batch = parse.GetValue(maxBatch);
            if (batch is < 1 or > 1024) return CliErrors.Fail($"--max-batch {batch} out of range [1, 1024]");
            int n = parse.GetValue(clients);
            if (parse.GetValue(compareTuned))
            {
                if (parse.GetValue(port) is not null) return CliErrors.Fail("--compare-tuned starts its own servers: it cannot be used with --port");
                if (parse.GetValue(tiers) is not null) return CliErrors.Fail("--compare-tuned compares one model: it cannot be used with --tiers");
                if (parse.GetValue(rounds) is < 1 or > 20) return CliErrors.Fail($"--rounds {parse.GetValue(rounds)} out of range [1, 20]");
                List<(string? Name, string? Path)> one;
                try
                {
                    one = TierOptions.ParseModels(parse.GetValue(model));
                }
                catch (ArgumentException e)
                {
                    return CliErrors.Fail(e.Message);
                }
                if (one.Count != 1 || one[0].Name is not null) return CliErrors.Fail("--compare-tuned compares one model: give one --model FILE");
                var workload = new ServeBenchOptions
                {
                    Host = "127.0.0.1", Port = 0, Token = token, Clients = n, Requests = parse.GetValue(requests), PromptTokens = parse.GetValue(promptTokens),
                    MaxTokens = parse.GetValue(maxTokens), Rate = parse.GetValue(rate), Seed = parse.GetValue(seed), WarmupRequests = parse.GetValue(warmup) ?? Math.Max(n, 4),
                };
                var comparison = new ServeTunedComparison(ModelOption.Resolve(one[0].Path), parse.GetValue(device), parse.GetValue(threads),
                    parse.GetValue(CommonOptions.Plugins), parse.GetValue(mmap), CommonOptions.KvCacheType(parse, kvType), batch, new SchedulerOptions().MaxBatchTokens,
                    parse.GetValue(fullTune), parse.GetValue(rounds), workload);
                return await BenchServeTuned.RunAsync(CommonOptions.Registry(parse), comparison, parse.GetValue(json), cancel);
            }

            ServingHost? server = null;
            string address = parse.GetValue(host)!;
            int serverPort;
            if (parse.GetValue(port) is { } p)
            {
                if (p is < 1 or > 65535) return CliErrors.Fail($"--port {p} out of range [1, 65535]");
                serverPort = p;
            }
            else
            {
                List<(string? Name, string? Path)> models;
                var policy = new Engine.Routing.TierPolicyOptions
                {
                    ProbeTokens = parse.GetValue(probe), MinMeanLogProb = parse.GetValue(minLogProb), MaxMeanEntropy = parse.GetValue(maxEntropy),
                };
                try
                {
                    models = TierOptions.ParseModels(parse.GetValue(model));
                    policy.Validate();
                }
                catch (ArgumentException e)
                {
                    return CliErrors.Fail(e.Message);
                }
                var modelOptions = new ModelOptions { MaxBatchSequences = batch, UseMmap = parse.GetValue(mmap), KvCacheType = CommonOptions.KvCacheType(parse, kvType) };
                var schedulerOptions = new SchedulerOptions { MaxBatchSequences = batch, MaxQueuedRequests = Math.Max(64, n) };
                var specs = models.Select(m => new TierSpec(m.Name, ModelOption.Resolve(m.Path), parse.GetValue(device), modelOptions, schedulerOptions,
                    TpotTargetMs: parse.GetValue(tpot))).ToList();
                string label = string.Join(", ", specs.Select(t => Path.GetFileName(t.ModelPath)));
                server = ProgressBar.Run($"loading {label}", ProgressUnit.Bytes, bar => ServingHost.Start(new ServingHostOptions
                {
                    ModelPath = specs[0].ModelPath,
                    Tiers = specs.Count == 1 && specs[0].Name is null ? null : specs,
                    Policy = policy,
                    EndPoint = new IPEndPoint(IPAddress.Loopback, 0),
                    AuthToken = token,
                    DeviceId = parse.GetValue(device),
                    Threads = parse.GetValue(threads),
                    PluginsFolder = parse.GetValue(CommonOptions.Plugins),
                    Model = modelOptions,
                    Scheduler = schedulerOptions,
                }, logs: null, loadProgress: bar));
                address = "127.0.0.1";
                serverPort = server.EndPoint.Port;
                Console.Error.WriteLine($"in-process server on {server.EndPoint}: " +
                                        string.Join(", ", server.Tiers.Select(t => $"{t.Name} = {t.Model.Name} on {t.Device.Descriptor.Id} ({t.Device.Descriptor.Name})")));
            }

            try
            {
                // One run per named model (tier or auto), in order, each on the same prompts (same seed); or one run.
                string?[] modes = parse.GetValue(tiers) is { } list
                    ? [.. list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)]
                    : [null];
                if (modes.Length == 0) return CliErrors.Fail("--tiers names no model");
                var reports = new List<ServeBenchReport>();
                for (int run = 0; run < modes.Length; run++)
                {
                    string? mode = modes[run];
                    var options = new ServeBenchOptions
                    {
                        Host = address,
                        Port = serverPort,
                        Token = token,
                        Clients = n,
                        Requests = parse.GetValue(requests),
                        PromptTokens = parse.GetValue(promptTokens),
                        MaxTokens = parse.GetValue(maxTokens),
                        Rate = parse.GetValue(rate),
                        // Each run draws its own prompts (seed + run): the same workload, none of it in the prefix cache of an earlier run.
                        Seed = parse.GetValue(seed) + (ulong)run,
                        WarmupRequests = parse.GetValue(warmup) ?? Math.Max(n, 4),
                        Model = mode,
                    };
                    ServeBenchReport report;
                    try
                    {
                        report = await ProgressBar.RunAsync(mode is null ? "requests" : $"requests ({mode})", ProgressUnit.Items,
                            bar => ServeBenchmark.RunAsync(options, new RequestProgressBar(bar), cancel));
                    }
                    catch (Exception e) when (e is System.Net.Sockets.SocketException or TimeoutException or IOException or Protocol.Rpc.RpcException)
                    {
                        // Reaching the server (or authenticating) failed before any request: one line, no stack trace.
                        return CliErrors.Fail($"cannot benchmark the server at {address}:{serverPort}: {e.Message}");
                    }
                    report.WriteText(Console.Out);
                    reports.Add(report);
                }
                if (reports.Count > 1) WriteComparison(Console.Out, reports);
                if (parse.GetValue(json) is { } jsonPath)
                {
                    using var file = File.Create(jsonPath);
                    if (reports.Count == 1) reports[0].WriteJson(file);
                    else WriteJson(file, reports);
                }
                return reports.All(r => r.Completed > 0) ? 0 : CliErrors.Fail("every request of a run failed");
            }
            finally
            {
                if (server is not null) await server.StopAsync(TimeSpan.FromSeconds(1));
            }
        });
        return command;
    }

    /// <summary>The runs side by side: throughput, TTFT and TPOT percentiles, and the share each tier answered.</summary>
    private static void WriteComparison(TextWriter w, List<ServeBenchReport> reports)
    {
        static string F(double v) => double.IsNaN(v) ? "n/a" : v.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture);
        w.WriteLine("================ Tiers compared ================");
        var table = Tables.Create(["model", "req/s", "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "answered by"], numeric: true);
        foreach (var r in reports)
            table.AddCells(r.Options.Model ?? "(default)", F(r.RequestThroughput), F(r.OutputThroughput), F(r.Ttft.P50), F(r.Ttft.P99),
                F(r.Tpot.P50), F(r.Tpot.P99), r.TierShares);
        Terminal.For(w).WriteTable(table);
    }

    /// <summary>Several runs as one JSON document: {"runs": [each run's own document]}.</summary>
    private static void WriteJson(Stream output, List<ServeBenchReport> reports)
    {
        using var j = new System.Text.Json.Utf8JsonWriter(output, new System.Text.Json.JsonWriterOptions { Indented = true });
        j.WriteStartObject();
        j.WriteStartArray("runs");
        foreach (var r in reports)
        {
            using var one = new MemoryStream();
            r.WriteJson(one);
            using var doc = System.Text.Json.JsonDocument.Parse(one.ToArray());
            doc.RootElement.WriteTo(j);
        }
        j.WriteEndArray();
        j.WriteEndObject();
    }
}

/// <summary>A serve benchmark's progress on a bar: requests done of all, with running, failed and output tokens/s beside the label.</summary>
internal sealed class RequestProgressBar(ProgressBar bar) : IProgress<ServeBenchProgress>
{
    public void Report(ServeBenchProgress p)
    {
        double seconds = Math.Max(1e-3, p.Elapsed.TotalSeconds);
        bar.Status($"{p.Done}/{p.Total}, running {p.Running}, failed {p.Failed}, {p.OutputTokens / seconds:0.0} output tok/s");
        bar.Report((p.Done, p.Total));
    }
}
