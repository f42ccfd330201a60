using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Serving.Engine.Models;
using Serving.Engine.Scheduling;
using Serving.Host.Cli;
using Serving.Host.Serve;
using Serving.Server;

namespace Serving.Host.Commands;

/// <summary>
/// <c>serve</c>: loads a model on a device and serves it over MessagePack-RPC (docs/rpc.md) until Ctrl+C or
/// SIGTERM, then stops accepting, drains in-flight work within the grace period and exits 0.
/// </summary>
internal static class ServeCommand
{
    // Phases of a serve run, for the signal handler.
    private const int Loading = 0, Serving = 1, Draining = 2;

    public static Command Create()
    {
        var command = new Command("serve", "Serve a model over MessagePack-RPC (see docs/rpc.md)");
        var model = TierOptions.Models();
        var bind = new Option<string>("--host") { Description = "Address to bind (loopback by default; anything else exposes the server)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0 = any free port; the chosen one is printed)", DefaultValueFactory = _ => 7411 };
        var tokenFile = new Option<string?>("--token-file") { Description = "File holding a shared secret; clients must call auth {token} first" };
        var ctx = new Option<int>("--ctx") { Description = "Context length per request (0 = the model's, at most 4096)", DefaultValueFactory = _ => 0 };
        var batchSequences = new Option<int>("--max-batch") { Description = "Most sequences decoded together in one step", DefaultValueFactory = _ => 16 };
        var batchTokens = new Option<int>("--max-batch-tokens") { Description = "Token budget of one step (prefill chunk + decodes)", DefaultValueFactory = _ => 256 };
        var queue = new Option<int>("--max-queue") { Description = "Requests allowed to wait; beyond, 'overloaded' at once", DefaultValueFactory = _ => 64 };
        var kvTokens = new Option<int>("--kv-tokens") { Description = "KV cache size in tokens over all requests (0 = auto)", DefaultValueFactory = _ => 0 };
        var grace = new Option<double>("--grace") { Description = "Seconds to drain in-flight work on shutdown", DefaultValueFactory = _ => 10 };
        var defaults = new RpcServerOptions();
        var maxConnections = new Option<int>("--max-connections")
        {
            Description = "Most open connections; when all are taken an idle one is reclaimed for a new client", DefaultValueFactory = _ => defaults.MaxConnections,
        };
        var perAddress = new Option<int>("--max-connections-per-address")
        {
            Description = "Most open connections from one address (IPv4 address or IPv6 /64)", DefaultValueFactory = _ => defaults.MaxConnectionsPerAddress,
        };
        var workMb = new Option<int>("--max-work-mb")
        {
            Description = "Memory budget for work in flight, MiB (requests, their working sets, queued replies); beyond it 'overloaded' at once",
            DefaultValueFactory = _ => (int)(defaults.MaxWorkBytes >> 20),
        };
        var requestTokens = new Option<int>("--max-request-tokens")
        {
            Description = "Most tokens one tokenize result or detokenize argument may hold (0 = the context length)", DefaultValueFactory = _ => 0,
        };
        var device = TierOptions.Devices();
        var drafts = TierOptions.Drafts();
        var draftK = new Option<int>("--draft-k") { Description = "Most draft tokens per step (k), adapted per sequence from the acceptance rate unless --draft-fixed", DefaultValueFactory = _ => 4 };
        var draftFixed = new Option<bool>("--draft-fixed") { Description = "Always propose --draft-k tokens (no adaptation)" };
        var probe = TierOptions.ProbeTokens();
        var minLogProb = TierOptions.MinLogProb();
        var maxEntropy = TierOptions.MaxEntropy();
        var noTune = DeviceTuning.NoTune();
        var tpot = DeviceTuning.TpotMs("Per-token latency target in ms for the tuned batch limits (0 = the profile's)");
        var threads = CommonOptions.Threads();
        var noMmap = CommonOptions.NoMmap();
        var kvType = CommonOptions.KvType();
        var checkTensors = CommonOptions.CheckTensors();
        foreach (var o in new Option[] { model, bind, port, tokenFile, ctx, batchSequences, batchTokens, queue, kvTokens, grace, maxConnections, perAddress, workMb,
                     requestTokens, device, noTune, tpot, threads, noMmap, kvType, checkTensors, probe, minLogProb, maxEntropy, drafts, draftK, draftFixed })
            command.Options.Add(o);
        command.SetAction(async (parse, _) =>
        {
            if (!IPAddress.TryParse(parse.GetValue(bind), out var address))
                return CliErrors.Fail($"--host '{parse.GetValue(bind)}' is not an IP address");
            int p = parse.GetValue(port);
            if (p is < 0 or > 65535) return CliErrors.Fail($"--port {p} out of range");
            string? token = null;
            if (parse.GetValue(tokenFile) is { } tf)
            {
                if (!File.Exists(tf)) return CliErrors.Fail($"token file not found: {tf}");
                token = File.ReadAllText(tf).Trim();
                if (token.Length < 8) return CliErrors.Fail("the token in --token-file must be at least 8 characters");
            }
            double graceSeconds = parse.GetValue(grace);
            if (!double.IsFinite(graceSeconds) || graceSeconds is < 0 or > 3600)
                return CliErrors.Fail($"--grace {graceSeconds} out of range [0, 3600] seconds");
            int sequences = parse.GetValue(batchSequences);
            if (sequences is < 1 or > 1024) return CliErrors.Fail($"--max-batch {sequences} out of range [1, 1024]");
            int connections = parse.GetValue(maxConnections), fromOne = parse.GetValue(perAddress), work = parse.GetValue(workMb);
            if (connections is < 1 or > 65536) return CliErrors.Fail($"--max-connections {connections} out of range [1, 65536]");
            if (fromOne is < 1 or > 65536) return CliErrors.Fail($"--max-connections-per-address {fromOne} out of range [1, 65536]");
            long minWork = RpcServerOptions.MinWorkBytes(defaults.Limits) >> 20;
            if (work < minWork || work > 1 << 20) return CliErrors.Fail($"--max-work-mb {work} out of range [{minWork}, 1048576] (two of the largest messages as they are decoded)");
            if (parse.GetValue(requestTokens) < 0) return CliErrors.Fail($"--max-request-tokens {parse.GetValue(requestTokens)} must be ≥ 0");

            using var stop = new CancellationTokenSource();
            // Loading holds no one's work, so a signal then exits at once; serving drains on the first signal;
            // a second signal while draining gives up the drain (as uvicorn and vLLM do).
            int phase = Loading;
            void OnSignal(PosixSignalContext c)
            {
                c.Cancel = true;
                int code = 128 + (c.Signal == PosixSignal.SIGTERM ? 15 : 2);
                switch (Volatile.Read(ref phase))
                {
                    case Loading:
                        Console.Error.WriteLine("interrupted while loading: exiting");
                        Environment.Exit(code);
                        break;
                    case Serving:
                        Volatile.Write(ref phase, Draining);
                        stop.Cancel();
                        break;
                    default:
                        Console.Error.WriteLine("second interrupt: exiting without finishing the drain");
                        Environment.Exit(code);
                        break;
                }
            }
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);

            using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; })
                .SetMinimumLevel(LogLevel.Information));
            ServingHost.CheckEndPoint(new IPEndPoint(address, p)); // a taken port fails before minutes of loading
            List<(string? Name, string? Path)> models;
            Dictionary<string, string> perTierDevice;
            Dictionary<string, string> draftOf;
            string fallbackDevice;
            var policy = new Engine.Routing.TierPolicyOptions
            {
                ProbeTokens = parse.GetValue(probe), MinMeanLogProb = parse.GetValue(minLogProb), MaxMeanEntropy = parse.GetValue(maxEntropy),
            };
            try
            {
                models = TierOptions.ParseModels(parse.GetValue(model));
                perTierDevice = TierOptions.ParseDevices(parse.GetValue(device), [.. models.Select(m => m.Name ?? "")], out fallbackDevice);
                draftOf = TierOptions.ParseDrafts(parse.GetValue(drafts), [.. models.Select(m => (m.Name, ModelOption.Resolve(m.Path)))]);
                if (parse.GetValue(draftK) is < 1 or > 32) throw new ArgumentException($"--draft-k {parse.GetValue(draftK)} out of range [1, 32]");
                policy.Validate();
            }
            catch (ArgumentException e)
            {
                return CliErrors.Fail(e.Message);
            }
            var registry = CommonOptions.Registry(parse);
            var kvCacheType = CommonOptions.KvCacheType(parse, kvType);
            var tiers = new List<TierSpec>();
            var described = new List<(string? Name, Engine.Tuning.TuningProfile Profile, int Batch, int Tokens, string Reason)>();
            foreach (var (name, path) in models)
            {
                string modelPath = ModelOption.Resolve(path);
                // Each tier's device and tuning profile (docs/tuner.md); explicit --max-batch / --max-batch-tokens win over it.
                string deviceArg = name is not null && perTierDevice.TryGetValue(name, out var d) ? d : fallbackDevice;
                if (name is not null) Console.Error.WriteLine($"tier {name}: {Path.GetFileName(modelPath)}");
                var tuned = DeviceTuning.Resolve(registry, deviceArg, modelPath,
                    new Abstractions.DeviceOptions(parse.GetValue(threads)), parse.GetValue(noTune), kvCacheType, !parse.GetValue(noMmap));
                int tierSequences = sequences, tokens = parse.GetValue(batchTokens);
                string limitsReason = "";
                double target = parse.GetValue(tpot);
                if (tuned.Profile is { } profile)
                {
                    var (tunedBatch, tunedTokens, why) = DeviceTuning.Limits(profile, parse.GetValue(tpot));
                    if (parse.GetResult(batchSequences) is not { Implicit: false }) tierSequences = tunedBatch;
                    if (parse.GetResult(batchTokens) is not { Implicit: false }) tokens = Math.Max(tunedTokens, tierSequences);
                    limitsReason = why;
                    if (target <= 0) target = profile.Limits.TpotTargetMs;
                    described.Add((name, profile, tierSequences, tokens, limitsReason));
                }
                tiers.Add(new TierSpec(name, modelPath, tuned.DeviceId,
                    new ModelOptions
                    {
                        CheckTensors = parse.GetValue(checkTensors),
                        ContextLength = parse.GetValue(ctx),
                        MaxBatchSequences = tierSequences,
                        MaxBatchTokens = tokens,
                        KvCacheTokens = parse.GetValue(kvTokens),
                        UseMmap = !parse.GetValue(noMmap),
                        KvCacheType = kvCacheType,
                        Kernels = tuned.Profile is null ? null : Engine.Tuning.KernelPlan.From(tuned.Profile),
                    },
                    new SchedulerOptions
                    {
                        MaxBatchSequences = tierSequences,
                        MaxBatchTokens = tokens,
                        MaxQueuedRequests = parse.GetValue(queue),
                    },
                    TpotTargetMs: target, ExpectedTpotMs: TierOptions.ExpectedTpotMs(tuned.Profile, tierSequences),
                    Draft: draftOf.TryGetValue(name ?? "", out var draftSpec) ? new TierDraft(draftSpec, parse.GetValue(draftK), !parse.GetValue(draftFixed)) : null));
            }
            var first = tiers[0];
            string label = tiers.Count == 1 ? Path.GetFileName(first.ModelPath) : string.Join(", ", tiers.Select(t => $"{t.Name}={Path.GetFileName(t.ModelPath)}"));
            var host = ProgressBar.Run($"loading {label}", ProgressUnit.Bytes, bar => ServingHost.Load(new ServingHostOptions
            {
                ModelPath = first.ModelPath,
                Tiers = tiers.Count == 1 && first.Name is null ? null : tiers,
                Policy = policy,
                EndPoint = new IPEndPoint(address, p),
                AuthToken = token,
                DeviceId = first.DeviceId,
                Threads = parse.GetValue(threads),
                PluginsFolder = parse.GetValue(CommonOptions.Plugins),
                MaxRequestTokens = parse.GetValue(requestTokens),
                Rpc = defaults with { MaxConnections = connections, MaxConnectionsPerAddress = fromOne, MaxWorkBytes = (long)work << 20 },
                Model = first.Model!,
                Scheduler = first.Scheduler!,
            }, loggerFactory, bar));
            foreach (var (name, used, batch, tokenBudget, reason) in described)
                DeviceTuning.Describe(used, host.Tiers.First(t => name is null || t.Name == name).Device, batch, tokenBudget, reason, batching: true);
            host.Listen();
            foreach (var t in host.Tiers) ModelSession.WarnIfContextBeyondTraining(t.Model.Model);
            Interlocked.CompareExchange(ref phase, Serving, Loading); // from here a signal drains
            if (host.Tiers.Count == 1)
                Console.WriteLine($"listening on {host.EndPoint} — model {host.Model.Name} on {host.Device.Descriptor.Id} ({host.Device.Descriptor.Name})" +
                                  (token is null ? "" : " (token required)"));
            else
            {
                Console.WriteLine($"listening on {host.EndPoint} — tiers (cheapest first): " +
                                  string.Join(", ", host.Tiers.Select(t => $"{t.Name} = {t.Model.Name} on {t.Device.Descriptor.Id}" +
                                      (t.Tier.TpotTargetMs > 0 ? $" (TPOT target {TierOptions.F(t.Tier.TpotTargetMs)} ms)" : ""))) +
                                  $"; default model 'auto' (probe {policy.ProbeTokens} tokens, min mean ln p {TierOptions.F(policy.MinMeanLogProb)}, max mean entropy {TierOptions.F(policy.MaxMeanEntropy)})" +
                                  (token is null ? "" : " (token required)"));
            }
            Console.Out.Flush();

            try { await Task.Delay(Timeout.Infinite, stop.Token); }
            catch (OperationCanceledException) { }

            var graceTime = TimeSpan.FromSeconds(graceSeconds);
            Console.Error.WriteLine($"shutting down: no new connections, draining in-flight requests (grace {graceTime.TotalSeconds:0} s; " +
                                    "interrupt again to exit now)");
            await host.StopAsync(graceTime);
            var all = host.Tiers.Select(t => t.Scheduler.GetMetrics()).ToList();
            Console.Error.WriteLine($"stopped: {all.Sum(m => m.Completed)} completed, {all.Sum(m => m.Cancelled)} cancelled, {all.Sum(m => m.Failed)} failed");
            return 0;
        });
        return command;
    }
}
