using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Serving.Abstractions;
using Serving.Engine.Energy;
using Serving.Engine.Models;
using Serving.Engine.Routing;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using Serving.Host.Plugins;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;
using Serving.Server;

namespace Serving.Host.Serve;

/// <summary>
/// The RPC methods of docs/rpc.md, bound to the server's model tiers (one or more, each with its scheduler) and the
/// router between them. Every argument is checked here (unknown keys, ranges, NaN) and every engine error is mapped to
/// a stable error code; nothing else reaches the client (never a stack trace). A one-tier server answers exactly as
/// before tiers existed, with the tier fields added.
/// </summary>
internal sealed class ServingMethods(IReadOnlyList<ServedTier> tiers, TierRouter router, DeviceRegistry registry, RpcServer server,
    ILogger? log = null, int maxRequestTokens = 0)
{
    /// <summary>The model name that routes by policy.</summary>
    public const string Auto = "auto";

    private readonly ILogger _log = log ?? NullLogger.Instance;
    // The cheapest tier: tokenize/detokenize without 'model' use it (tiers share one vocabulary).
    private readonly ServedTier _first = tiers[0];
    private readonly int _maxContext = tiers.Max(t => t.Scheduler.ContextLength);
    private const int MaxStopStrings = 16, MaxStopLength = 256;

    /// <summary>
    /// Bytes of work-budget charged per char of text while it is tokenized: the tokenizer's working set (its symbol
    /// arrays and merge queue, ~120 bytes per char at worst) plus the ids and their reply values.
    /// </summary>
    internal const long TokenizeBytesPerChar = 160;

    /// <summary>Bytes charged per token a request holds (ids, reply values, text) while it runs.</summary>
    internal const long BytesPerToken = 64;

    /// <summary>Most tokens one tokenize result or detokenize argument may hold: <c>--max-request-tokens</c>, by default the context length.</summary>
    public int MaxRequestTokens { get; } = maxRequestTokens > 0 ? maxRequestTokens : tiers.Max(t => t.Scheduler.ContextLength);
    private readonly DateTime _started = DateTime.UtcNow;
    // Energy since start of each device that has a meter (read every second so a counter's wrap is never missed); the
    // timers go with this object.
    private readonly Dictionary<IAccelerator, EnergyTotal> _energy = tiers.Select(t => t.Device).Distinct()
        .Where(d => d.EnergyMeter is not null).ToDictionary(d => d, d => new EnergyTotal(d.EnergyMeter!, TimeSpan.FromSeconds(1)));


    private long _requests, _streamedTokens;

    /// <summary>Registers every method on the server; server.info and health are public (no token needed).</summary>
    public void Register()
    {
        server.Register(RpcMethods.ServerInfo, (c, _) => { c.Args.EnsureOnly(); return ValueTask.FromResult(Info()); }, isPublic: true);
        server.Register(RpcMethods.Health, (c, _) => { c.Args.EnsureOnly(); return ValueTask.FromResult(Health()); }, isPublic: true);
        server.Register(RpcMethods.DevicesList, (c, _) => { c.Args.EnsureOnly(); return ValueTask.FromResult(Devices()); });
        server.Register(RpcMethods.ModelsList, (c, _) => { c.Args.EnsureOnly(); return ValueTask.FromResult(Models()); });
        server.Register(RpcMethods.Tokenize, (c, _) => ValueTask.FromResult(Tokenize(c)));
        server.Register(RpcMethods.Detokenize, (c, _) => ValueTask.FromResult(Detokenize(c)));
        server.Register(RpcMethods.Metrics, (c, _) => { c.Args.EnsureOnly(); return ValueTask.FromResult(Metrics()); });
        server.Register(RpcMethods.Generate, GenerateAsync);
    }

    private MsgValue Info() => MsgValue.Map(
        (RpcFields.Name, "serving"),
        (RpcFields.Version, typeof(ServingMethods).Assembly.GetName().Version?.ToString(3) ?? "0"),
        (RpcFields.ContractVersion, ContractVersion.Current.ToString()),
        (RpcFields.Model, tiers.Count == 1 ? _first.Model.Name : Auto),
        (RpcFields.Device, _first.Device.Descriptor.Id),
        (RpcFields.Tiers, MsgValue.FromArray([.. tiers.Select(t => (MsgValue)t.Name)])),
        (RpcFields.DefaultModel, Auto),
        (RpcFields.AuthRequired, server.Options.AuthToken is not null),
        (RpcFields.Methods, MsgValue.FromArray([RpcMethods.ServerInfo, RpcMethods.Health, RpcMethods.Auth, RpcMethods.DevicesList, RpcMethods.ModelsList,
            RpcMethods.Tokenize, RpcMethods.Detokenize, RpcMethods.Generate, RpcMethods.Cancel, RpcMethods.Metrics])));

    private MsgValue Health()
    {
        // The server is as well as its worst tier: one faulted tier makes it not ready (its requests would fail).
        var fields = new List<(MsgValue, MsgValue)>();
        var perTier = new List<MsgValue>();
        int worst = -1, running = 0, waiting = 0;
        ServedTier? worstTier = null;
        foreach (var t in tiers)
        {
            var m = t.Scheduler.GetMetrics();
            var state = t.Scheduler.State;
            running += m.Running;
            waiting += m.Waiting;
            int rank = state switch { SchedulerState.Accepting => 0, SchedulerState.Draining => 1, SchedulerState.Faulted => 3, _ => 2 };
            if (rank > worst) (worst, worstTier) = (rank, t);
            perTier.Add(MsgValue.Map((RpcFields.Tier, t.Name), (RpcFields.Status, Status(state)), (RpcFields.Ready, state == SchedulerState.Accepting),
                (RpcFields.Device, t.Device.Descriptor.Id), (RpcFields.Running, m.Running), (RpcFields.Waiting, m.Waiting)));
        }
        var w = worstTier!;
        var worstState = w.Scheduler.State;
        fields.AddRange([
            (RpcFields.Status, Status(worstState)), (RpcFields.Ready, worstState == SchedulerState.Accepting), (RpcFields.Device, _first.Device.Descriptor.Id),
            (RpcFields.Running, running), (RpcFields.Waiting, waiting), (RpcFields.UptimeSeconds, (DateTime.UtcNow - _started).TotalSeconds),
        ]);
        if (worstState == SchedulerState.Faulted)
        {
            string device = w.Device.Descriptor.Id, which = tiers.Count == 1 ? "" : $" (tier {w.Name})";
            fields.Add((RpcFields.Reason, DeviceLost(w) is { } lost
                ? $"device {device}{which} was lost ({lost.Operation}, native code {lost.NativeCode}) and is marked failed; requests are refused until the server is restarted on a working device"
                : $"a forward step failed on device {device}{which}; requests are refused until the server is restarted"));
        }
        fields.Add((RpcFields.Tiers, MsgValue.FromArray([.. perTier])));
        return MsgValue.Map([.. fields]);
    }

    private static string Status(SchedulerState state) => state switch
    {
        // A faulted scheduler has failed every request and takes no more: the device is not ready until a restart.
        SchedulerState.Accepting => "ok",
        SchedulerState.Draining => "draining",
        SchedulerState.Faulted => "faulted",
        _ => "stopped",
    };

    private MsgValue Devices()
    {
        var list = new List<MsgValue>();
        foreach (var p in registry.Plugins)
        {
            if (!p.Usable)
            {
                list.Add(MsgValue.Map((RpcFields.Backend, p.Name), (RpcFields.Status, "unavailable"), (RpcFields.Reason, p.Error ?? "")));
                continue;
            }
            foreach (var d in p.Probe!.Devices)
                list.Add(MsgValue.Map((RpcFields.Backend, p.Name), (RpcFields.DeviceId, d.Id), (RpcFields.Name, d.Name), (RpcFields.Vendor, d.Vendor),
                    (RpcFields.Kind, d.Kind.ToString().ToLowerInvariant()), (RpcFields.MemoryBytes, d.TotalMemoryBytes),
                    (RpcFields.Driver, d.DriverVersion), (RpcFields.Status, DeviceStatus(d.Id))));
        }
        return MsgValue.FromArray([.. list]);
    }

    private string DeviceStatus(string id)
    {
        var on = tiers.Where(t => t.Device.Descriptor.Id == id).ToList();
        if (on.Count == 0) return "ready";
        var faulted = on.FirstOrDefault(t => t.Scheduler.State == SchedulerState.Faulted);
        return faulted is null ? "serving" : DeviceLost(faulted) is not null ? "failed" : "faulted";
    }

    /// <summary>The backend's error when the tier's scheduler stopped because the device was lost
    /// (<see cref="AcceleratorException.DeviceLost"/>); null otherwise.</summary>
    private static AcceleratorException? DeviceLost(ServedTier t) =>
        t.Scheduler.FaultCause is ModelStepException { InnerException: AcceleratorException { DeviceLost: true } lost } ? lost : null;

    private MsgValue Models() => MsgValue.FromArray([.. tiers.Select(t =>
    {
        var c = t.Model.Model.Config;
        return MsgValue.Map(
            (RpcFields.ModelId, t.Model.Name), (RpcFields.Tier, t.Name), (RpcFields.File, Path.GetFileName(t.Model.Path)), (RpcFields.Architecture, c.Architecture),
            (RpcFields.Layers, c.Layers), (RpcFields.Dim, c.Dim), (RpcFields.Heads, c.Heads), (RpcFields.KvHeads, c.KvHeads), (RpcFields.Vocab, c.VocabSize),
            (RpcFields.ContextLength, t.Scheduler.ContextLength), (RpcFields.WeightBytes, t.Model.Model.WeightBytes),
            (RpcFields.Device, t.Device.Descriptor.Id), (RpcFields.Tokenizer, t.Model.Tokenizer.Model));
    })]);

    /// <summary>The tier named (by tier name or model name), or null for auto; not_found names what is loaded.</summary>
    private ServedTier? FindTier(string id)
    {
        if (id == Auto) return null;
        return tiers.FirstOrDefault(t => t.Name == id) ?? tiers.FirstOrDefault(t => t.Model.Name == id)
            ?? throw new RpcException(RpcErrorCodes.NotFound,
                tiers.Count == 1 ? $"model '{id}' is not loaded; loaded: '{_first.Name}'"
                : $"model '{id}' is not loaded; loaded tiers: {string.Join(", ", tiers.Select(t => $"'{t.Name}'"))}, or 'auto'");
    }

    /// <summary>The model a tokenize or detokenize names (tiers share one vocabulary: any tier's tokenizer serves).</summary>
    private LoadedModel CheckModel(RpcArgs a) =>
        (a.GetOptionalString(RpcFields.Model) is { } id ? FindTier(id) ?? _first : _first).Model;

    private MsgValue Tokenize(RpcCall call)
    {
        var a = call.Args;
        a.EnsureOnly(RpcFields.Text, RpcFields.AddBos, RpcFields.Model);
        var model = CheckModel(a);
        string text = a.GetString(RpcFields.Text);
        int[] ids = Encode(call, model, text, a.GetBool(RpcFields.AddBos, false), MaxRequestTokens,
            n => TooManyTokens("'text'", n, MaxRequestTokens, atLeast: true));
        if (ids.Length > MaxRequestTokens) throw TooManyTokens("'text'", ids.Length, MaxRequestTokens, atLeast: false);
        return MsgValue.Map((RpcFields.Tokens, IntArray(ids)));
    }

    private MsgValue Detokenize(RpcCall call)
    {
        var a = call.Args;
        a.EnsureOnly(RpcFields.Tokens, RpcFields.Model);
        var model = CheckModel(a);
        var tokens = a.Get(RpcFields.Tokens);
        if (tokens.Kind == MsgValueKind.Array && tokens.Count > MaxRequestTokens)
            throw TooManyTokens("'tokens'", tokens.Count, MaxRequestTokens, atLeast: false);
        call.Reserve(tokens.Count * BytesPerToken);
        int[] ids = TokenIds(tokens, RpcFields.Tokens, MaxRequestTokens, _maxContext);
        return MsgValue.Map((RpcFields.Text, model.Tokenizer.Decode(ids)));
    }

    /// <summary>
    /// Tokenizes <paramref name="text"/> for a request allowed <paramref name="limit"/> tokens. A text too long to fit
    /// (more chars than <paramref name="limit"/> tokens of the longest token can cover) is refused before any work with
    /// <paramref name="tooLong"/>(a lower bound of its token count); otherwise the tokenizer's working set is charged to the
    /// work budget while it runs (<c>overloaded</c> when it does not fit), then exchanged for the ids' own charge.
    /// </summary>
    private static int[] Encode(RpcCall call, LoadedModel model, string text, bool addBos, int limit, Func<long, RpcException> tooLong)
    {
        int longest = model.Tokenizer.MaxTokenLength;
        if (text.Length > (long)limit * longest)
            throw tooLong((text.Length + longest - 1) / longest);
        long working = (text.Length + 1) * TokenizeBytesPerChar;
        call.Reserve(working);
        int[] ids = model.Tokenizer.Encode(text, addBos);
        call.Release(working);
        call.Reserve(ids.Length * BytesPerToken);
        return ids;
    }

    /// <summary>context_exceeded for a tokenize or detokenize past the per-request token limit.</summary>
    private static RpcException TooManyTokens(string what, long tokens, int limit, bool atLeast) => new(RpcErrorCodes.ContextExceeded,
        $"{what} has {(atLeast ? "at least " : "")}{tokens} tokens; a request may hold at most {limit} (--max-request-tokens; by default the context length)",
        MsgValue.Map((RpcFields.Tokens, tokens), (RpcFields.Limit, limit)));

    private MsgValue Metrics()
    {
        var perTier = tiers.Select(t => t.Scheduler.GetMetrics()).ToList();
        var m = Sum(perTier);
        var rpc = server.GetMetrics();
        using var process = Process.GetCurrentProcess();
        var gc = GC.GetGCMemoryInfo();
        return MsgValue.Map([
            ("requests", Interlocked.Read(ref _requests)),
            ("running", m.Running), ("waiting", m.Waiting), ("completed", m.Completed), ("failed", m.Failed),
            ("cancelled", m.Cancelled), ("refused_overloaded", m.Refused), ("preemptions", m.Preemptions),
            ("prompt_tokens", m.PromptTokens), ("generated_tokens", m.GeneratedTokens),
            ("prefix_cache_hit_tokens", m.PrefixCacheHitTokens), ("computed_prompt_tokens", m.ComputedTokens),
            ("kv_blocks_used", m.KvBlocksUsed), ("kv_blocks_total", m.KvBlocksTotal), ("kv_blocks_cached", m.KvBlocksCached),
            ("kv_evictions", m.KvEvictions), ("steps", m.Steps), ("mean_batch_sequences", m.MeanBatchSequences),
            ("mean_batch_tokens", m.MeanBatchTokens), ("streamed_tokens", Interlocked.Read(ref _streamedTokens)),
            ("draft_tokens", m.DraftTokens), ("draft_accepted_tokens", m.DraftAcceptedTokens),
            ("draft_acceptance_rate", m.DraftAcceptanceRate ?? 0.0),
            ("draft_kv_blocks_used", m.DraftKvBlocksUsed), ("draft_kv_blocks_total", m.DraftKvBlocksTotal),
            ("connections", rpc.Connections), ("connections_accepted", rpc.ConnectionsAccepted),
            ("connections_refused", rpc.ConnectionsRefused), ("connections_reclaimed", rpc.ConnectionsReclaimed),
            ("connections_waiting", rpc.ConnectionsWaiting),
            ("auth_failures", rpc.AuthFailures), ("auth_delayed", rpc.AuthDelayed), ("auth_refused", rpc.AuthRefused),
            ("work_bytes", rpc.WorkBytes), ("work_budget_bytes", rpc.WorkBudgetBytes), ("work_peak_bytes", rpc.WorkPeakBytes),
            ("refused_over_budget", rpc.RefusedOverBudget), ("memory_compactions", rpc.Compactions), ("work_collections", rpc.Collections),
            ("working_set_bytes", process.WorkingSet64), ("peak_working_set_bytes", process.PeakWorkingSet64),
            ("weights_bytes", tiers.Sum(t => t.Model.Model.WeightBytes)), ("kv_cache_bytes", tiers.Sum(t => KvCacheBytes(t.Model.Model))),
            ("managed_heap_bytes", GC.GetTotalMemory(false)),
            ("gc_committed_bytes", gc.TotalCommittedBytes), ("handles", process.HandleCount), .. EnergyFields(m),
            (RpcFields.Tiers, TierMetrics(perTier))]);
    }

    /// <summary>The bytes of <paramref name="model"/>'s KV cache as allocated (every block, used or not).</summary>
    private static long KvCacheBytes(Engine.Models.LlamaModel model) =>
        (long)model.KvBlockCount * model.KvBlockSize * model.Config.KvBytesPerToken(model.KvCacheType);

    /// <summary>The tiers' counters added up (means weighted by steps): what a one-tier server reported before tiers.</summary>
    private static SchedulerMetrics Sum(List<SchedulerMetrics> all)
    {
        if (all.Count == 1) return all[0];
        long steps = all.Sum(x => x.Steps);
        return new SchedulerMetrics(all.Sum(x => x.Running), all.Sum(x => x.Waiting), all.Sum(x => x.Completed), all.Sum(x => x.Failed),
            all.Sum(x => x.Cancelled), all.Sum(x => x.Preemptions), all.Sum(x => x.Refused), all.Sum(x => x.PromptTokens), all.Sum(x => x.GeneratedTokens),
            all.Sum(x => x.PrefixCacheHitTokens), all.Sum(x => x.ComputedTokens), all.Sum(x => x.KvBlocksUsed), all.Sum(x => x.KvBlocksTotal),
            all.Sum(x => x.KvBlocksCached), all.Sum(x => x.KvEvictions), steps,
            steps == 0 ? 0 : all.Sum(x => x.MeanBatchSequences * x.Steps) / steps, steps == 0 ? 0 : (double)all.Sum(x => x.ComputedTokens) / steps,
            DraftTokens: all.Sum(x => x.DraftTokens), DraftAcceptedTokens: all.Sum(x => x.DraftAcceptedTokens),
            DraftKvBlocksUsed: all.Sum(x => x.DraftKvBlocksUsed), DraftKvBlocksTotal: all.Sum(x => x.DraftKvBlocksTotal),
            StepSeconds: all.Sum(x => x.StepSeconds));
    }

    /// <summary>
    /// Per tier (a map by name): routed requests started, answered, escalated away and shed to it; its tokens; the
    /// seconds its model held its device (forward steps); joules: its device's energy since start, shared between the
    /// tiers on that device in proportion to their device seconds (nil without a meter); its moving-average TPOT.
    /// </summary>
    private MsgValue TierMetrics(List<SchedulerMetrics> perTier)
    {
        var entries = new List<(MsgValue, MsgValue)>();
        var joulesByDevice = _energy.ToDictionary(e => e.Key, e => e.Value.Read());
        for (int i = 0; i < tiers.Count; i++)
        {
            var (t, m) = (tiers[i], perTier[i]);
            double? joules = null;
            if (joulesByDevice.TryGetValue(t.Device, out var j) && j is { } total)
            {
                double busy = 0;
                for (int k = 0; k < tiers.Count; k++)
                    if (tiers[k].Device == t.Device) busy += perTier[k].StepSeconds;
                int sharing = tiers.Count(x => x.Device == t.Device);
                joules = busy > 0 ? total * m.StepSeconds / busy : total / sharing;
            }
            entries.Add((t.Name, MsgValue.Map(
                ("device", t.Device.Descriptor.Id), ("requests", t.Tier.Started), ("answered", t.Tier.Answered),
                ("escalations", t.Tier.Escalations), ("shed", t.Tier.Shed),
                ("running", m.Running), ("waiting", m.Waiting), ("completed", m.Completed), ("failed", m.Failed), ("cancelled", m.Cancelled),
                ("prompt_tokens", m.PromptTokens), ("generated_tokens", m.GeneratedTokens), ("computed_tokens", m.ComputedTokens),
                ("kv_blocks_used", m.KvBlocksUsed), ("kv_blocks_total", m.KvBlocksTotal), ("steps", m.Steps),
                ("device_seconds", m.StepSeconds), ("joules", joules is { } x ? x : MsgValue.Nil),
                ("tpot_ms", t.Tier.TpotMs), ("tpot_target_ms", t.Tier.TpotTargetMs))));
        }
        return MsgValue.Map([.. entries]);
    }

    /// <summary>energy_source, energy_method, energy_joules (since start, idle included, every metered device) and
    /// joules_per_token (÷ tokens run through the models); nil without a meter ("not measured").</summary>
    private (MsgValue, MsgValue)[] EnergyFields(SchedulerMetrics m)
    {
        double? joules = null;
        foreach (var e in _energy.Values)
            if (e.Read() is { } j) joules = (joules ?? 0) + j;
        var first = _energy.Values.FirstOrDefault();
        return
        [
            ("energy_source", first is null ? MsgValue.Nil : string.Join(", ", _energy.Values.Select(e => e.Meter.Source))),
            ("energy_method", first?.Method ?? "not measured"),
            ("energy_joules", joules is { } j2 ? j2 : MsgValue.Nil),
            ("joules_per_token", joules is { } jt && m.ComputedTokens > 0 ? jt / m.ComputedTokens : MsgValue.Nil),
        ];
    }

    private static readonly string[] GenerateArgs =
        [RpcFields.Prompt, RpcFields.Tokens, RpcFields.MaxTokens, RpcFields.Temperature, RpcFields.TopK, RpcFields.TopP, RpcFields.MinP,
            RpcFields.RepeatPenalty, RpcFields.RepeatLastN, RpcFields.Seed, RpcFields.Stop, RpcFields.Stream, RpcFields.AddBos, RpcFields.Model,
            RpcFields.MinTier, RpcFields.AllowShed];

    /// <summary>The route of a generate: the named tier or auto (the default; docs/rpc.md), min_tier and allow_shed.</summary>
    private (TierRoute Route, int Context) Route(RpcArgs a)
    {
        // Without 'model', auto: with one tier that is the tier, unprobed.
        var named = a.GetOptionalString(RpcFields.Model) is { } id ? FindTier(id) : null;
        int min = 0;
        if (a.GetOptionalString(RpcFields.MinTier) is { } minName)
        {
            var minTier = FindTier(minName) ?? throw Bad("'min_tier' must name a tier, not 'auto'");
            min = IndexOf(minTier);
            if (named is not null && IndexOf(named) < min)
                throw Bad($"'model' {named.Name} is below 'min_tier' {minTier.Name}");
        }
        // By default an auto request may be shed to a cheaper tier under load; one naming its tier runs there.
        bool shed = a.GetBool(RpcFields.AllowShed, named is null);
        if (named is null) return (new TierRoute(null, min, shed), tiers.Skip(min).Max(t => t.Scheduler.ContextLength));
        return (new TierRoute(IndexOf(named), min, shed), named.Scheduler.ContextLength);
    }

    private int IndexOf(ServedTier t)
    {
        for (int i = 0; i < tiers.Count; i++)
            if (tiers[i] == t) return i;
        return -1;
    }

    private async ValueTask<MsgValue> GenerateAsync(RpcCall call, CancellationToken ct)
    {
        var a = call.Args;
        a.EnsureOnly(GenerateArgs);
        var (route, context) = Route(a);
        // Tokenized with the tier it names (or the cheapest): tiers share one vocabulary, so the ids are the same.
        var model = (route.Tier is { } n ? tiers[n] : tiers[route.MinTier]).Model;
        Interlocked.Increment(ref _requests);
        int[] prompt;
        if (a.Has(RpcFields.Prompt) == a.Has(RpcFields.Tokens))
            throw Bad("give exactly one of 'prompt' (text) or 'tokens' (ids)");
        if (a.Has(RpcFields.Prompt))
        {
            string text = a.GetString(RpcFields.Prompt);
            if (text.Length == 0) throw Bad("'prompt' is empty");
            // A prompt longer than the context can hold is refused before it is tokenized.
            prompt = Encode(call, model, text, a.GetBool(RpcFields.AddBos, model.Tokenizer.AddBos), context - 1,
                n => ContextExceeded("prompt", (int)Math.Min(n, int.MaxValue), context, atLeast: true));
        }
        else
        {
            var tokens = a.Get(RpcFields.Tokens);
            call.Reserve(Math.Min(tokens.Count, context) * BytesPerToken);
            prompt = TokenIds(tokens, RpcFields.Tokens, context - 1, context);
            if (prompt.Length == 0) throw Bad("'tokens' is empty");
        }
        int maxTokens = (int)(a.GetOptionalInt64(RpcFields.MaxTokens, 1, context) ?? Math.Min(128, context));
        call.Reserve(maxTokens * BytesPerToken); // the tokens and text it will produce
        var sampling = new SamplingParams(
            (float)Finite(a, RpcFields.Temperature, 0, 100, 0.8),
            (int)(a.GetOptionalInt64(RpcFields.TopK, 0, model.Model.VocabSize) ?? 40),
            (float)Finite(a, RpcFields.TopP, 1e-6, 1, 0.95),
            (float)Finite(a, RpcFields.MinP, 0, 1, 0.05),
            (float)Finite(a, RpcFields.RepeatPenalty, 1e-3, 100, 1.0),
            (int)(a.GetOptionalInt64(RpcFields.RepeatLastN, 0, context) ?? 64),
            Seed(a));
        var stops = StopStrings(a);
        bool stream = a.GetBool(RpcFields.Stream, false);
        if (stream && call.MessageId is null) throw Bad("'stream' needs a request (a notification has no id to stream to)");

        // A tier served with a draft (serve --draft) speculates inside its own scheduler; routing does not change.
        RoutedGeneration routed;
        try
        {
            routed = router.Submit(new GenerationRequest($"{call.ConnectionId}:{call.MessageId}", prompt, maxTokens, sampling, stops), route, ct);
        }
        catch (SchedulerOverloadedException e)
        {
            throw new RpcException(RpcErrorCodes.Overloaded, e.Message, MsgValue.Map((RpcFields.Retriable, true)));
        }
        catch (ContextLengthExceededException e)
        {
            throw ContextExceeded("prompt", e.PromptTokens, e.ContextLength);
        }
        catch (SchedulerUnavailableException e)
        {
            throw new RpcException(RpcErrorCodes.Unavailable, $"the model cannot take requests ({e.State.ToString().ToLowerInvariant()})");
        }
        catch (ArgumentException e)
        {
            // The arguments were checked above; what the scheduler still refuses (e.g. a prompt that tokenizes to
            // nothing) is the request's fault, and its message names the field, never server internals.
            throw Bad(e.Message);
        }

        await foreach (var chunk in routed.Chunks.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            if (!stream) continue;
            Interlocked.Increment(ref _streamedTokens);
            // A client that stopped reading is closed by the server's write limits, which cancels ct and so the request.
            await call.NotifyAsync(RpcMethods.GenerateToken, MsgValue.Map((RpcFields.Id, (long)call.MessageId!.Value), (RpcFields.Text, chunk.Text), (RpcFields.Token, chunk.TokenId))).ConfigureAwait(false);
        }
        var routedResult = await routed.Completion.ConfigureAwait(false);
        var r = routedResult.Result;
        var device = tiers.First(t => t.Tier == routedResult.Tier).Device;
        if (r.FinishReason == FinishReason.Error)
        {
            if (r.Error is NonFiniteLogitsException nonFinite)
            {
                ServingLog.NonFiniteLogits(_log, nonFinite.Position, routed.RequestId);
                throw new RpcException(RpcErrorCodes.Internal, nonFinite.Message, MsgValue.Map((RpcFields.Reason, "non_finite_logits")));
            }
            if (r.Error is ModelStepException step)
            {
                ServingLog.StepFailed(_log, step, routed.RequestId);
                // The device's own words stay in the log; the op and native code tell the client what failed.
                string what = step.InnerException is AcceleratorException ae ? $" ({ae.Operation}, native code {ae.NativeCode})" : "";
                string message = step.InnerException is AcceleratorException { DeviceLost: true }
                    ? $"device {device.Descriptor.Id} was lost during this request's forward step{what}; it is marked failed, the model is not ready and takes no more requests"
                    : $"device {device.Descriptor.Id} failed during this request's forward step{what}; the model is marked not ready and takes no more requests";
                throw new RpcException(RpcErrorCodes.Unavailable, message, MsgValue.Map((RpcFields.Device, device.Descriptor.Id)));
            }
            ServingLog.RequestFailed(_log, r.Error, routed.RequestId);
            throw new RpcException(RpcErrorCodes.Internal, "generation failed");
        }
        var u = r.Usage;
        // A request that ran on one tier unprobed reports its tier's own times; one held back or moved reports what the
        // client saw: from its arrival to its first released token, and to its end.
        bool direct = routedResult.Tried.Count == 1 && routedResult.Confidence is null;
        return MsgValue.Map(
            (RpcFields.Text, r.Text),
            (RpcFields.Tokens, IntArray(r.TokenIds)),
            (RpcFields.FinishReason, r.FinishReason switch
            {
                FinishReason.Length => "length",
                FinishReason.Stop => "stop",
                FinishReason.EndOfGeneration => "eos",
                _ => "cancelled",
            }),
            (RpcFields.Stop, r.MatchedStop),
            (RpcFields.Seed, r.Seed),
            (RpcFields.Tier, routedResult.Tier.Name),
            (RpcFields.TierReason, routedResult.Reason.Wire()),
            (RpcFields.TiersTried, MsgValue.FromArray([.. routedResult.Tried.Select(x => (MsgValue)x)])),
            (RpcFields.Confidence, routedResult.Confidence is { } c
                ? MsgValue.Map((RpcFields.Tokens, c.Tokens), (RpcFields.MeanLogProb, c.MeanLogProb), (RpcFields.MeanEntropy, c.MeanEntropy))
                : MsgValue.Nil),
            (RpcFields.Usage, MsgValue.Map(
                (RpcFields.PromptTokens, u.PromptTokens),
                (RpcFields.CompletionTokens, u.CompletionTokens),
                (RpcFields.CachedPromptTokens, u.CachedPromptTokens),
                (RpcFields.TtftMs, Ms(direct ? u.TimeToFirstToken : routedResult.TimeToFirstChunk)),
                (RpcFields.TpotMs, Ms(u.TimePerOutputToken)),
                (RpcFields.TotalMs, (direct ? u.TotalTime : routedResult.TotalTime).TotalMilliseconds),
                (RpcFields.QueueMs, Ms(u.QueueTime)),
                (RpcFields.Preemptions, u.Preemptions),
                (RpcFields.DraftTokens, u.DraftTokens),
                (RpcFields.DraftAcceptedTokens, u.DraftAcceptedTokens),
                (RpcFields.AcceptanceRate, u.DraftAcceptanceRate is { } rate ? MsgValue.FromFloat64(rate) : MsgValue.Nil),
                (RpcFields.Joules, MsgValue.Nil))));
    }

    private static MsgValue Ms(TimeSpan? t) => t is { } v ? MsgValue.FromFloat64(v.TotalMilliseconds) : MsgValue.Nil;

    private static double Finite(RpcArgs a, string name, double min, double max, double fallback)
    {
        if (!a.Has(name)) return fallback;
        if (!a.Get(name).TryGetDouble(out double v) || !double.IsFinite(v))
            throw Bad($"'{name}' must be a finite number");
        if (v < min || v > max) throw Bad($"'{name}' = {v} is out of range [{min}, {max}]");
        return v;
    }

    private static ulong? Seed(RpcArgs a)
    {
        if (!a.Has(RpcFields.Seed)) return null;
        if (a.Get(RpcFields.Seed).TryGetUInt64(out ulong seed)) return seed;
        throw Bad("'seed' must be an unsigned 64-bit integer");
    }

    private static IReadOnlyList<string>? StopStrings(RpcArgs a)
    {
        if (!a.Has(RpcFields.Stop)) return null;
        var v = a.Get(RpcFields.Stop);
        if (v.Kind != MsgValueKind.Array) throw Bad("'stop' must be an array of strings");
        if (v.Count > MaxStopStrings) throw Bad($"'stop' has {v.Count} strings; at most {MaxStopStrings}");
        var list = new List<string>(v.Count);
        for (int i = 0; i < v.Count; i++)
        {
            if (!v[i].TryGetString(out string? s) || s.Length == 0 || s.Length > MaxStopLength)
                throw Bad($"'stop'[{i}] must be a non-empty string of at most {MaxStopLength} characters");
            list.Add(s);
        }
        return list;
    }

    /// <summary>context_exceeded carrying both counts: the prompt's tokens (a lower bound when <paramref name="atLeast"/>:
    /// the text was refused untokenized) and the positions the context holds.</summary>
    private static RpcException ContextExceeded(string what, int promptTokens, int context, bool atLeast = false) => new(RpcErrorCodes.ContextExceeded,
        $"{what} has {(atLeast ? "at least " : "")}{promptTokens} tokens; the context holds {context}, so at most {context - 1} prompt tokens fit",
        MsgValue.Map((RpcFields.PromptTokens, promptTokens), (RpcFields.ContextLength, context)));

    /// <summary>Token ids from an array; more than <paramref name="maxCount"/> is context_exceeded (checked before anything is allocated).</summary>
    private int[] TokenIds(MsgValue v, string name, int maxCount, int context)
    {
        if (v.Kind != MsgValueKind.Array) throw Bad($"'{name}' must be an array of token ids");
        if (v.Count > maxCount) throw ContextExceeded($"'{name}'", v.Count, context);
        var ids = new int[v.Count];
        int vocab = _first.Model.Model.VocabSize;
        for (int i = 0; i < ids.Length; i++)
        {
            if (!v[i].TryGetUInt64(out ulong id) || id >= (ulong)vocab)
                throw Bad($"'{name}'[{i}] must be a token id in [0, {vocab})");
            ids[i] = (int)id;
        }
        return ids;
    }

    private static MsgValue IntArray(IReadOnlyList<int> ids)
    {
        var items = new MsgValue[ids.Count];
        for (int i = 0; i < items.Length; i++) items[i] = ids[i];
        return MsgValue.FromArray(items);
    }

    private static RpcException Bad(string message) => new(RpcErrorCodes.BadRequest, message);
}

/// <summary>Log messages of the serving methods, with stable event ids (101–110).</summary>
internal static partial class ServingLog
{
    [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "Request {RequestId} failed: the model step failed and the device is marked not ready")]
    public static partial void StepFailed(ILogger logger, Exception error, string requestId);

    [LoggerMessage(EventId = 102, Level = LogLevel.Error, Message = "Request {RequestId} failed inside the engine")]
    public static partial void RequestFailed(ILogger logger, Exception? error, string requestId);

    [LoggerMessage(EventId = 103, Level = LogLevel.Error, Message = "Request {RequestId} failed: NaN or infinite logits at position {Position} (corrupt weights? try --check-tensors)")]
    public static partial void NonFiniteLogits(ILogger logger, int position, string requestId);
}
