using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Serving.Abstractions;
using Serving.Engine.Energy;
using Serving.Engine.Models;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using Serving.Host.Plugins;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;
using Serving.Server;

namespace Serving.Host.Serve;

/// <summary>
/// The RPC methods of docs/rpc.md, bound to one loaded model and its scheduler. Every argument is checked here
/// (unknown keys, ranges, NaN) and every engine error is mapped to a stable error code; nothing else reaches the
/// client (never a stack trace).
/// </summary>
internal sealed class ServingMethods(LoadedModel model, Scheduler scheduler, DeviceRegistry registry, IAccelerator device, RpcServer server,
    ILogger? log = null, int maxRequestTokens = 0)
{
    private readonly ILogger _log = log ?? NullLogger.Instance;
    private const int MaxStopStrings = 16, MaxStopLength = 256;

    /// <summary>
    /// Bytes of work-budget charged per char of text while it is tokenized: the tokenizer's working set (its symbol
    /// arrays and merge queue, ~120 bytes per char at worst) plus the ids and their reply values.
    /// </summary>
    internal const long TokenizeBytesPerChar = 160;

    /// <summary>Bytes charged per token a request holds (ids, reply values, text) while it runs.</summary>
    internal const long BytesPerToken = 64;

    /// <summary>Most tokens one tokenize result or detokenize argument may hold: <c>--max-request-tokens</c>, by default the context length.</summary>
    public int MaxRequestTokens { get; } = maxRequestTokens > 0 ? maxRequestTokens : scheduler.ContextLength;
    private readonly DateTime _started = DateTime.UtcNow;
    // Energy since start where the device has a meter (read every second so a counter's wrap is never missed); its
    // timer goes with this object.
    private readonly EnergyTotal? _energy = device.EnergyMeter is { } meter ? new EnergyTotal(meter, TimeSpan.FromSeconds(1)) : null;
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
        (RpcFields.Model, model.Name),
        (RpcFields.Device, device.Descriptor.Id),
        (RpcFields.AuthRequired, server.Options.AuthToken is not null),
        (RpcFields.Methods, MsgValue.FromArray([RpcMethods.ServerInfo, RpcMethods.Health, RpcMethods.Auth, RpcMethods.DevicesList, RpcMethods.ModelsList,
            RpcMethods.Tokenize, RpcMethods.Detokenize, RpcMethods.Generate, RpcMethods.Cancel, RpcMethods.Metrics])));

    private MsgValue Health()
    {
        var m = scheduler.GetMetrics();
        var state = scheduler.State;
        // A faulted scheduler has failed every request and takes no more: the device is not ready until a restart.
        string status = state switch
        {
            SchedulerState.Accepting => "ok",
            SchedulerState.Draining => "draining",
            SchedulerState.Faulted => "faulted",
            _ => "stopped",
        };
        var fields = new List<(MsgValue, MsgValue)>
        {
            (RpcFields.Status, status), (RpcFields.Ready, state == SchedulerState.Accepting), (RpcFields.Device, device.Descriptor.Id),
            (RpcFields.Running, m.Running), (RpcFields.Waiting, m.Waiting), (RpcFields.UptimeSeconds, (DateTime.UtcNow - _started).TotalSeconds),
        };
        if (state == SchedulerState.Faulted)
            fields.Add((RpcFields.Reason, DeviceLost() is { } lost
                ? $"device {device.Descriptor.Id} was lost ({lost.Operation}, native code {lost.NativeCode}) and is marked failed; requests are refused until the server is restarted on a working device"
                : $"a forward step failed on device {device.Descriptor.Id}; requests are refused until the server is restarted"));
        return MsgValue.Map([.. fields]);
    }

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

    private string DeviceStatus(string id) =>
        id != device.Descriptor.Id ? "ready"
        : scheduler.State != SchedulerState.Faulted ? "serving"
        : DeviceLost() is not null ? "failed" : "faulted";

    /// <summary>The backend's error when the scheduler stopped because the device was lost
    /// (<see cref="AcceleratorException.DeviceLost"/>); null otherwise.</summary>
    private AcceleratorException? DeviceLost() =>
        scheduler.FaultCause is ModelStepException { InnerException: AcceleratorException { DeviceLost: true } lost } ? lost : null;

    private MsgValue Models()
    {
        var c = model.Model.Config;
        return MsgValue.FromArray(MsgValue.Map(
            (RpcFields.ModelId, model.Name), (RpcFields.File, Path.GetFileName(model.Path)), (RpcFields.Architecture, c.Architecture),
            (RpcFields.Layers, c.Layers), (RpcFields.Dim, c.Dim), (RpcFields.Heads, c.Heads), (RpcFields.KvHeads, c.KvHeads), (RpcFields.Vocab, c.VocabSize),
            (RpcFields.ContextLength, scheduler.ContextLength), (RpcFields.WeightBytes, model.Model.WeightBytes),
            (RpcFields.Device, device.Descriptor.Id), (RpcFields.Tokenizer, model.Tokenizer.Model)));
    }

    private void CheckModel(RpcArgs a)
    {
        if (a.GetOptionalString(RpcFields.Model) is { } id && id != model.Name)
            throw new RpcException(RpcErrorCodes.NotFound, $"model '{id}' is not loaded; loaded: '{model.Name}'");
    }

    private MsgValue Tokenize(RpcCall call)
    {
        var a = call.Args;
        a.EnsureOnly(RpcFields.Text, RpcFields.AddBos, RpcFields.Model);
        CheckModel(a);
        string text = a.GetString(RpcFields.Text);
        int[] ids = Encode(call, text, a.GetBool(RpcFields.AddBos, false), MaxRequestTokens,
            n => TooManyTokens("'text'", n, MaxRequestTokens, atLeast: true));
        if (ids.Length > MaxRequestTokens) throw TooManyTokens("'text'", ids.Length, MaxRequestTokens, atLeast: false);
        return MsgValue.Map((RpcFields.Tokens, IntArray(ids)));
    }

    private MsgValue Detokenize(RpcCall call)
    {
        var a = call.Args;
        a.EnsureOnly(RpcFields.Tokens, RpcFields.Model);
        CheckModel(a);
        var tokens = a.Get(RpcFields.Tokens);
        if (tokens.Kind == MsgValueKind.Array && tokens.Count > MaxRequestTokens)
            throw TooManyTokens("'tokens'", tokens.Count, MaxRequestTokens, atLeast: false);
        call.Reserve(tokens.Count * BytesPerToken);
        int[] ids = TokenIds(tokens, RpcFields.Tokens, MaxRequestTokens);
        return MsgValue.Map((RpcFields.Text, model.Tokenizer.Decode(ids)));
    }

    /// <summary>
    /// Tokenizes <paramref name="text"/> for a request allowed <paramref name="limit"/> tokens. A text too long to fit
    /// (more chars than <paramref name="limit"/> tokens of the longest token can cover) is refused before any work with
    /// <paramref name="tooLong"/>(a lower bound of its token count); otherwise the tokenizer's working set is charged to the
    /// work budget while it runs (<c>overloaded</c> when it does not fit), then exchanged for the ids' own charge.
    /// </summary>
    private int[] Encode(RpcCall call, string text, bool addBos, int limit, Func<long, RpcException> tooLong)
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
        var m = scheduler.GetMetrics();
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
            ("working_set_bytes", process.WorkingSet64), ("managed_heap_bytes", GC.GetTotalMemory(false)),
            ("gc_committed_bytes", gc.TotalCommittedBytes), ("handles", process.HandleCount), .. EnergyFields(m)]);
    }

    /// <summary>energy_source, energy_method, energy_joules (since start, idle included) and joules_per_token (÷ tokens run
    /// through the model); nil without a meter ("not measured").</summary>
    private (MsgValue, MsgValue)[] EnergyFields(SchedulerMetrics m)
    {
        double? joules = _energy?.Read();
        return
        [
            ("energy_source", _energy is null ? MsgValue.Nil : _energy.Meter.Source),
            ("energy_method", _energy?.Method ?? "not measured"),
            ("energy_joules", joules is { } j ? j : MsgValue.Nil),
            ("joules_per_token", joules is { } jt && m.ComputedTokens > 0 ? jt / m.ComputedTokens : MsgValue.Nil),
        ];
    }

    private static readonly string[] GenerateArgs =
        [RpcFields.Prompt, RpcFields.Tokens, RpcFields.MaxTokens, RpcFields.Temperature, RpcFields.TopK, RpcFields.TopP, RpcFields.MinP,
            RpcFields.RepeatPenalty, RpcFields.RepeatLastN, RpcFields.Seed, RpcFields.Stop, RpcFields.Stream, RpcFields.AddBos, RpcFields.Model];

    private async ValueTask<MsgValue> GenerateAsync(RpcCall call, CancellationToken ct)
    {
        var a = call.Args;
        a.EnsureOnly(GenerateArgs);
        CheckModel(a);
        Interlocked.Increment(ref _requests);
        int[] prompt;
        if (a.Has(RpcFields.Prompt) == a.Has(RpcFields.Tokens))
            throw Bad("give exactly one of 'prompt' (text) or 'tokens' (ids)");
        if (a.Has(RpcFields.Prompt))
        {
            string text = a.GetString(RpcFields.Prompt);
            if (text.Length == 0) throw Bad("'prompt' is empty");
            // A prompt longer than the context can hold is refused before it is tokenized.
            prompt = Encode(call, text, a.GetBool(RpcFields.AddBos, model.Tokenizer.AddBos), scheduler.ContextLength - 1,
                n => ContextExceeded("prompt", (int)Math.Min(n, int.MaxValue), atLeast: true));
        }
        else
        {
            var tokens = a.Get(RpcFields.Tokens);
            call.Reserve(Math.Min(tokens.Count, scheduler.ContextLength) * BytesPerToken);
            prompt = TokenIds(tokens, RpcFields.Tokens, scheduler.ContextLength - 1);
            if (prompt.Length == 0) throw Bad("'tokens' is empty");
        }
        int maxTokens = (int)(a.GetOptionalInt64(RpcFields.MaxTokens, 1, scheduler.ContextLength) ?? Math.Min(128, scheduler.ContextLength));
        call.Reserve(maxTokens * BytesPerToken); // the tokens and text it will produce
        var sampling = new SamplingParams(
            (float)Finite(a, RpcFields.Temperature, 0, 100, 0.8),
            (int)(a.GetOptionalInt64(RpcFields.TopK, 0, model.Model.VocabSize) ?? 40),
            (float)Finite(a, RpcFields.TopP, 1e-6, 1, 0.95),
            (float)Finite(a, RpcFields.MinP, 0, 1, 0.05),
            (float)Finite(a, RpcFields.RepeatPenalty, 1e-3, 100, 1.0),
            (int)(a.GetOptionalInt64(RpcFields.RepeatLastN, 0, scheduler.ContextLength) ?? 64),
            Seed(a));
        var stops = StopStrings(a);
        bool stream = a.GetBool(RpcFields.Stream, false);
        if (stream && call.MessageId is null) throw Bad("'stream' needs a request (a notification has no id to stream to)");

        GenerationHandle handle;
        try
        {
            handle = scheduler.Submit(new GenerationRequest($"{call.ConnectionId}:{call.MessageId}", prompt, maxTokens, sampling, stops), ct);
        }
        catch (SchedulerOverloadedException e)
        {
            throw new RpcException(RpcErrorCodes.Overloaded, e.Message, MsgValue.Map((RpcFields.Retriable, true)));
        }
        catch (ContextLengthExceededException e)
        {
            throw ContextExceeded("prompt", e.PromptTokens);
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

        await foreach (var chunk in handle.Chunks.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            if (!stream) continue;
            Interlocked.Increment(ref _streamedTokens);
            // A client that stopped reading is closed by the server's write limits, which cancels ct and so the request.
            await call.NotifyAsync(RpcMethods.GenerateToken, MsgValue.Map((RpcFields.Id, (long)call.MessageId!.Value), (RpcFields.Text, chunk.Text), (RpcFields.Token, chunk.TokenId))).ConfigureAwait(false);
        }
        var r = await handle.Completion.ConfigureAwait(false);
        if (r.FinishReason == FinishReason.Error)
        {
            if (r.Error is NonFiniteLogitsException nonFinite)
            {
                ServingLog.NonFiniteLogits(_log, nonFinite.Position, handle.RequestId);
                throw new RpcException(RpcErrorCodes.Internal, nonFinite.Message, MsgValue.Map((RpcFields.Reason, "non_finite_logits")));
            }
            if (r.Error is ModelStepException step)
            {
                ServingLog.StepFailed(_log, step, handle.RequestId);
                // The device's own words stay in the log; the op and native code tell the client what failed.
                string what = step.InnerException is AcceleratorException ae ? $" ({ae.Operation}, native code {ae.NativeCode})" : "";
                string message = step.InnerException is AcceleratorException { DeviceLost: true }
                    ? $"device {device.Descriptor.Id} was lost during this request's forward step{what}; it is marked failed, the model is not ready and takes no more requests"
                    : $"device {device.Descriptor.Id} failed during this request's forward step{what}; the model is marked not ready and takes no more requests";
                throw new RpcException(RpcErrorCodes.Unavailable, message, MsgValue.Map((RpcFields.Device, device.Descriptor.Id)));
            }
            ServingLog.RequestFailed(_log, r.Error, handle.RequestId);
            throw new RpcException(RpcErrorCodes.Internal, "generation failed");
        }
        var u = r.Usage;
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
            (RpcFields.Usage, MsgValue.Map(
                (RpcFields.PromptTokens, u.PromptTokens),
                (RpcFields.CompletionTokens, u.CompletionTokens),
                (RpcFields.CachedPromptTokens, u.CachedPromptTokens),
                (RpcFields.TtftMs, Ms(u.TimeToFirstToken)),
                (RpcFields.TpotMs, Ms(u.TimePerOutputToken)),
                (RpcFields.TotalMs, u.TotalTime.TotalMilliseconds),
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
    private RpcException ContextExceeded(string what, int promptTokens, bool atLeast = false) => new(RpcErrorCodes.ContextExceeded,
        $"{what} has {(atLeast ? "at least " : "")}{promptTokens} tokens; the context holds {scheduler.ContextLength}, so at most {scheduler.ContextLength - 1} prompt tokens fit",
        MsgValue.Map((RpcFields.PromptTokens, promptTokens), (RpcFields.ContextLength, scheduler.ContextLength)));

    /// <summary>Token ids from an array; more than <paramref name="maxCount"/> is context_exceeded (checked before anything is allocated).</summary>
    private int[] TokenIds(MsgValue v, string name, int maxCount)
    {
        if (v.Kind != MsgValueKind.Array) throw Bad($"'{name}' must be an array of token ids");
        if (v.Count > maxCount) throw ContextExceeded($"'{name}'", v.Count);
        var ids = new int[v.Count];
        int vocab = model.Model.VocabSize;
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
