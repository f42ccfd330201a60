using System.Net.Sockets;
using System.Net;
using Microsoft.Extensions.Logging;
using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Routing;
using Serving.Engine.Scheduling;
using Serving.Host.Plugins;
using Serving.Server;

namespace Serving.Host.Serve;

/// <summary>What a server is built from (the serve command's options).</summary>
internal sealed record ServingHostOptions
{
    /// <summary>The model of a one-tier server (<c>--model FILE</c>); ignored when <see cref="Tiers"/> is given.</summary>
    public string ModelPath { get; init; } = "";
    /// <summary>Several tiers at once (<c>--model NAME=FILE</c> …); null or empty = one tier from <see cref="ModelPath"/>.</summary>
    public IReadOnlyList<TierSpec>? Tiers { get; init; }
    /// <summary>The policy of <c>model: "auto"</c>.</summary>
    public Engine.Routing.TierPolicyOptions Policy { get; init; } = new();
    public IPEndPoint EndPoint { get; init; } = new(IPAddress.Loopback, 7411);
    public string? AuthToken { get; init; }
    public string? DeviceId { get; init; }
    public int Threads { get; init; }
    public ModelOptions Model { get; init; } = new();
    public SchedulerOptions Scheduler { get; init; } = new();
    /// <summary>Overrides for the RPC limits (message size, connections, timeouts); the endpoint and token above win.</summary>
    public RpcServerOptions Rpc { get; init; } = new();
    public string? PluginsFolder { get; init; }
    /// <summary>Most tokens one tokenize result or detokenize argument may hold; 0 = the context length.</summary>
    public int MaxRequestTokens { get; init; }
}

/// <summary>
/// A running server: devices, model tiers (each with its own scheduler and KV cache), the tier router and the RPC
/// endpoint, started together and stopped in order (stop accepting → drain within the grace period → free the models →
/// close the devices). Used by the serve command and, in process, by the tests.
/// </summary>
internal sealed class ServingHost : IAsyncDisposable
{
    private bool _stopped;

    private readonly IReadOnlyList<LoadedModel> _drafts;

    private ServingHost(IReadOnlyList<ServedTier> tiers, IReadOnlyList<LoadedModel> drafts, IReadOnlyList<IAccelerator> devices, TierRouter router, RpcServer server)
    {
        Tiers = tiers;
        _drafts = drafts;
        Devices = devices;
        Router = router;
        Server = server;
    }

    /// <summary>The tiers, cheapest first (by weight bytes).</summary>
    public IReadOnlyList<ServedTier> Tiers { get; }
    /// <summary>Every device opened, once each.</summary>
    public IReadOnlyList<IAccelerator> Devices { get; }
    public TierRouter Router { get; }
    /// <summary>The cheapest tier's device (a one-tier server's only device).</summary>
    public IAccelerator Device => Tiers[0].Device;
    /// <summary>The cheapest tier's model (a one-tier server's only model).</summary>
    public LoadedModel Model => Tiers[0].Model;
    /// <summary>The cheapest tier's scheduler (a one-tier server's only scheduler).</summary>
    public Scheduler Scheduler => Tiers[0].Scheduler;
    public RpcServer Server { get; }
    public IPEndPoint EndPoint => Server.LocalEndPoint;

    /// <summary>Opens the devices, loads the models and starts listening. Nothing stays open if any step fails.</summary>
    public static ServingHost Start(ServingHostOptions options, ILoggerFactory? logs = null, IProgress<(long, long)>? loadProgress = null) =>
        Start(options, logs, loadProgress, wrapModel: null, wrapDecoder: null);

    /// <summary>
    /// Test seam: as <see cref="Start(ServingHostOptions, ILoggerFactory?, IProgress{ValueTuple{long, long}}?)"/>,
    /// but each scheduler drives <paramref name="wrapModel"/>(model) and streams through
    /// <paramref name="wrapDecoder"/>(decoder), so tests can inject engine and device faults behind the real RPC path.
    /// </summary>
    internal static ServingHost Start(ServingHostOptions options, ILoggerFactory? logs, IProgress<(long, long)>? loadProgress,
        Func<IStepModel, IStepModel>? wrapModel, Func<ITokenDecoder, ITokenDecoder>? wrapDecoder)
    {
        var host = Load(options, logs, loadProgress, wrapModel, wrapDecoder);
        host.Listen();
        return host;
    }

    /// <summary>
    /// Opens the devices, loads the models and registers the RPC methods, but does not listen yet (<see cref="Listen"/>
    /// does): the serve command closes its loading bar in between, so the server's first log line cannot tear it.
    /// Nothing stays open if any step fails.
    /// </summary>
    public static ServingHost Load(ServingHostOptions options, ILoggerFactory? logs = null, IProgress<(long, long)>? loadProgress = null) =>
        Load(options, logs, loadProgress, wrapModel: null, wrapDecoder: null);

    private static ServingHost Load(ServingHostOptions options, ILoggerFactory? logs, IProgress<(long, long)>? loadProgress,
        Func<IStepModel, IStepModel>? wrapModel, Func<ITokenDecoder, ITokenDecoder>? wrapDecoder)
    {
        logs ??= Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
        var registry = DeviceRegistry.Discover(options.PluginsFolder);
        var specs = options.Tiers is { Count: > 0 } given ? given : [new TierSpec(null, options.ModelPath, options.DeviceId)];
        var devices = new Dictionary<string, IAccelerator>(StringComparer.Ordinal);
        var tiers = new List<ServedTier>();
        var loaded = new List<(LoadedModel Model, Scheduler? Scheduler)>();
        var drafts = new List<LoadedModel>();
        RpcServer? server = null;
        try
        {
            // Each device once, however many tiers run on it.
            var placed = new List<(TierSpec Spec, IAccelerator Device)>();
            foreach (var spec in specs)
            {
                string? id = spec.DeviceId ?? options.DeviceId;
                string key = id is null ? "" : registry.Find(id).Device.Id;
                if (!devices.TryGetValue(key, out var device))
                    devices[key] = device = registry.Open(id, new DeviceOptions(options.Threads));
                placed.Add((spec, device));
            }
            var modelOptions = placed.Select(p => p.Spec.Model ?? options.Model).ToList();
            if (specs.Count > 1 || specs.Any(s => s.Draft is not null))
            {
                // Weights and KV caches of every tier, and of every tier's draft, accounted for per device before
                // anything is loaded (a self draft is counted as the whole file: never less than it needs). A draft's KV
                // cache holds as many tokens as its tier's, so only the tiers' plans are kept.
                var entries = placed.Select((p, i) => (p.Spec.Name ?? Path.GetFileNameWithoutExtension(p.Spec.ModelPath), p.Spec.ModelPath, p.Device.Descriptor.Id, modelOptions[i])).ToList();
                foreach (var (p, i) in placed.Select((p, i) => (p, i)).Where(x => x.p.Spec.Draft is not null))
                {
                    string draftSpec = p.Spec.Draft!.Spec;
                    string draftPath = draftSpec == "self" || draftSpec.StartsWith("self:", StringComparison.Ordinal) ? p.Spec.ModelPath : draftSpec;
                    entries.Add(($"{entries[i].Item1}'s draft", draftPath, p.Device.Descriptor.Id, modelOptions[i]));
                }
                var plan = TierMemoryPlan.Plan(entries, id => devices.Values.First(d => d.Descriptor.Id == id).FreeMemoryBytes);
                for (int i = 0; i < placed.Count; i++)
                    modelOptions[i] = modelOptions[i] with { KvCacheTokens = (int)Math.Min(int.MaxValue, plan[i].KvTokens) };
            }
            for (int i = 0; i < placed.Count; i++)
            {
                var (spec, device) = placed[i];
                var model = LoadedModel.Open(spec.ModelPath, device, modelOptions[i], loadProgress);
                loaded.Add((model, null));
                int at = loaded.Count - 1;
                IStepModel stepModel = wrapModel?.Invoke(model.Model) ?? model.Model;
                ITokenDecoder decoder = new TokenizerDecoder(model.Tokenizer);
                var schedulerOptions = spec.Scheduler ?? options.Scheduler;
                if (spec.Draft is { } d)
                {
                    // The tier's own draft (a second load when it names another tier's file): one scheduler per draft.
                    var draft = Commands.DraftOptions.Load(d.Spec, spec.ModelPath, model, device, modelOptions[i])
                                ?? throw new ArgumentException("--draft: no draft given");
                    loaded.Add((draft, null));
                    drafts.Add(draft);
                    schedulerOptions = schedulerOptions with
                    {
                        Speculative = new Engine.Speculative.SpeculativeOptions
                        {
                            Draft = draft.Model,
                            MaxDraftTokens = d.MaxTokens,
                            Adaptive = d.Adaptive,
                            DraftCostRatio = Commands.DraftOptions.CostRatio(draft, model),
                        },
                    };
                }
                var scheduler = new Scheduler(stepModel, wrapDecoder?.Invoke(decoder) ?? decoder, schedulerOptions);
                loaded[at] = (model, scheduler);
                string name = spec.Name ?? model.Name;
                tiers.Add(new ServedTier(name, device, model, scheduler, new Tier(name, scheduler, spec.TpotTargetMs, spec.ExpectedTpotMs)));
            }
            // Cheapest first: what one decode step moves through memory (stable for equal sizes: command-line order).
            tiers = [.. tiers.OrderBy(t => t.Model.Model.WeightBytes)];
            CheckSameVocabulary(tiers);
            var router = new TierRouter([.. tiers.Select(t => t.Tier)], new TierPolicy(options.Policy));
            server = new RpcServer(options.Rpc with { EndPoint = options.EndPoint, AuthToken = options.AuthToken }, logs.CreateLogger("serving.rpc"));
            new ServingMethods(tiers, router, registry, server, logs.CreateLogger("serving.methods"), options.MaxRequestTokens).Register();
            return new ServingHost(tiers, drafts, [.. devices.Values], router, server);
        }
        catch
        {
            Free(server, loaded, devices.Values);
            throw;
        }
    }

    /// <summary>
    /// Tiers answer the same requests (a prompt given as token ids, a request restarted on another tier), so they must
    /// share one vocabulary: same size, same special ids, same token texts (checked on a sample of ids).
    /// </summary>
    private static void CheckSameVocabulary(IReadOnlyList<ServedTier> tiers)
    {
        var a = tiers[0];
        foreach (var b in tiers.Skip(1))
        {
            var (x, y) = (a.Model.Tokenizer, b.Model.Tokenizer);
            bool same = x.VocabSize == y.VocabSize && a.Model.Model.VocabSize == b.Model.Model.VocabSize && x.BosId == y.BosId && x.EosId == y.EosId;
            for (int id = 0; same && id < x.VocabSize; id += 61)
                same = x.Decode([id]) == y.Decode([id]);
            if (!same)
                throw new ModelLoadException("tiers", $"{a.Name} and {b.Name} have different vocabularies ({x.VocabSize} and {y.VocabSize} tokens); tiers must share one (a request may move between them)");
        }
    }

    /// <summary>
    /// Starts accepting connections on the options' endpoint. When it cannot bind, everything is freed and
    /// <see cref="EndPointUnavailableException"/> says which endpoint and why.
    /// </summary>
    public void Listen()
    {
        try
        {
            Server.Start();
        }
        catch (SocketException e)
        {
            _stopped = true;
            Free(Server, [.. Tiers.Select(t => (t.Model, (Scheduler?)t.Scheduler))], Devices);
            throw new EndPointUnavailableException(Server.Options.EndPoint, e);
        }
    }

    /// <summary>Frees what a failed start had opened, in reverse order of opening.</summary>
    private static void Free(RpcServer? server, IReadOnlyList<(LoadedModel Model, Scheduler? Scheduler)> loaded, IEnumerable<IAccelerator> devices)
    {
        server?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        foreach (var (_, scheduler) in loaded) scheduler?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        foreach (var (model, _) in loaded) model.Dispose();
        foreach (var device in devices) device.Dispose();
    }

    /// <summary>Stops accepting, lets in-flight requests finish within <paramref name="grace"/>, then cancels the rest and frees everything.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_stopped) return;
        _stopped = true;
        await Server.StopAsync(grace).ConfigureAwait(false);
        foreach (var t in Tiers) await t.Scheduler.DrainAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        foreach (var t in Tiers) await t.Scheduler.DisposeAsync().ConfigureAwait(false);
        // A lost device may refuse even to free its memory; the host is stopping, so that is not worth failing over.
        bool Lost(IAccelerator d) => Tiers.Any(t => t.Device == d
            && t.Scheduler.FaultCause is ModelStepException { InnerException: AcceleratorException { DeviceLost: true } });
        foreach (var t in Tiers)
        {
            try { t.Model.Dispose(); }
            catch (AcceleratorException) when (Lost(t.Device)) { }
        }
        foreach (var draft in _drafts)
        {
            try { draft.Dispose(); }
            catch (AcceleratorException) when (Tiers.Any(t => Lost(t.Device))) { }
        }
        foreach (var d in Devices)
        {
            try { d.Dispose(); }
            catch (AcceleratorException) when (Lost(d)) { }
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync(TimeSpan.Zero).ConfigureAwait(false);

    /// <summary>
    /// Fails fast, before a model is loaded, when the endpoint cannot be bound (port in use, address not local).
    /// </summary>
    public static void CheckEndPoint(IPEndPoint endPoint)
    {
        try
        {
            using var probe = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(endPoint);
        }
        catch (SocketException e)
        {
            throw new EndPointUnavailableException(endPoint, e);
        }
    }
}

/// <summary>The server's endpoint cannot be bound; the message says which and why.</summary>
internal sealed class EndPointUnavailableException(IPEndPoint endPoint, SocketException inner)
    : Exception($"cannot listen on {endPoint}: {inner.Message}", inner);
