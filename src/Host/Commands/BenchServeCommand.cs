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
        var model = ModelOption.Create();
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var maxBatch = new Option<int>("--max-batch") { Description = "In-process server: most sequences per step", DefaultValueFactory = _ => 16 };
        var mmap = new Option<bool>("--mmap") { Description = "In-process server: serve weights from the mapped file instead of resident memory" };
        var kvType = CommonOptions.KvType();
        foreach (var o in new Option[] { clients, requests, promptTokens, maxTokens, rate, host, port, tokenFile, seed, warmup, json, model, device, threads, maxBatch, mmap, kvType })
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
                string path = ModelOption.Resolve(parse.GetValue(model));
                server = ProgressBar.Run($"loading {Path.GetFileName(path)}", ProgressUnit.Bytes, bar => ServingHost.Start(new ServingHostOptions
                {
                    ModelPath = path,
                    EndPoint = new IPEndPoint(IPAddress.Loopback, 0),
                    AuthToken = token,
                    DeviceId = parse.GetValue(device),
                    Threads = parse.GetValue(threads),
                    PluginsFolder = parse.GetValue(CommonOptions.Plugins),
                    Model = new ModelOptions { MaxBatchSequences = batch, UseMmap = parse.GetValue(mmap), KvCacheType = CommonOptions.KvCacheType(parse, kvType) },
                    Scheduler = new SchedulerOptions { MaxBatchSequences = batch, MaxQueuedRequests = Math.Max(64, n) },
                }, logs: null, loadProgress: bar));
                address = "127.0.0.1";
                serverPort = server.EndPoint.Port;
                Console.Error.WriteLine($"in-process server on {server.EndPoint}: {server.Model.Name} on {server.Device.Descriptor.Id} ({server.Device.Descriptor.Name})");
            }

            try
            {
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
                    Seed = parse.GetValue(seed),
                    WarmupRequests = parse.GetValue(warmup) ?? Math.Max(n, 4),
                };
                ServeBenchReport report;
                try
                {
                    report = await ProgressBar.RunAsync("requests", ProgressUnit.Items,
                        bar => ServeBenchmark.RunAsync(options, new RequestProgress(bar), cancel));
                }
                catch (Exception e) when (e is System.Net.Sockets.SocketException or TimeoutException or IOException or Protocol.Rpc.RpcException)
                {
                    // Reaching the server (or authenticating) failed before any request: one line, no stack trace.
                    return CliErrors.Fail($"cannot benchmark the server at {address}:{serverPort}: {e.Message}");
                }
                report.WriteText(Console.Out);
                if (parse.GetValue(json) is { } jsonPath)
                {
                    using var file = File.Create(jsonPath);
                    report.WriteJson(file);
                }
                return report.Completed > 0 ? 0 : CliErrors.Fail("every request failed");
            }
            finally
            {
                if (server is not null) await server.StopAsync(TimeSpan.FromSeconds(1));
            }
        });
        return command;
    }

    /// <summary>The run's progress on the bar: requests done of all, with running, failed and output tokens/s beside the label.</summary>
    private sealed class RequestProgress(ProgressBar bar) : IProgress<ServeBenchProgress>
    {
        public void Report(ServeBenchProgress p)
        {
            double seconds = Math.Max(1e-3, p.Elapsed.TotalSeconds);
            bar.Status($"{p.Done}/{p.Total}, running {p.Running}, failed {p.Failed}, {p.OutputTokens / seconds:0.0} output tok/s");
            bar.Report((p.Done, p.Total));
        }
    }
}
