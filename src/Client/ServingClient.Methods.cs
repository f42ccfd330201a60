using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Client;

// The typed methods of docs/rpc.md. Each is a CallAsync plus a strict read of the reply: a reply of the wrong
// shape throws InvalidDataException naming the method and field.
public sealed partial class ServingClient
{
    /// <summary><c>server.info</c>: software, loaded model, device, whether auth is required (public: no token needed).</summary>
    public async Task<ServerInfo> InfoAsync(CancellationToken ct = default)
    {
        var r = new ReplyReader(await CallAsync(RpcMethods.ServerInfo, default, ct).ConfigureAwait(false), RpcMethods.ServerInfo);
        return new ServerInfo(r.String(RpcFields.Name), r.String(RpcFields.Version), r.String(RpcFields.ContractVersion), r.String(RpcFields.Model),
            r.String(RpcFields.Device), r.Bool(RpcFields.AuthRequired), r.StringArray(RpcFields.Methods));
    }

    /// <summary><c>health</c>: serving state and queue sizes (public: no token needed).</summary>
    public async Task<HealthStatus> HealthAsync(CancellationToken ct = default)
    {
        var r = new ReplyReader(await CallAsync(RpcMethods.Health, default, ct).ConfigureAwait(false), RpcMethods.Health);
        string status = r.String(RpcFields.Status);
        // Older servers send no "ready": there "ok" was the only state that took requests.
        return new HealthStatus(status, r.OptionalBool(RpcFields.Ready) ?? status == "ok", r.Int32(RpcFields.Running), r.Int32(RpcFields.Waiting),
            r.Double(RpcFields.UptimeSeconds), r.OptionalString(RpcFields.Device), r.OptionalString(RpcFields.Reason));
    }

    /// <summary><c>models.list</c>: the loaded models.</summary>
    public async Task<IReadOnlyList<ModelInfo>> ListModelsAsync(CancellationToken ct = default)
    {
        var list = await CallAsync(RpcMethods.ModelsList, default, ct).ConfigureAwait(false);
        return ReadList(list, RpcMethods.ModelsList, r => new ModelInfo(r.String(RpcFields.ModelId), r.String(RpcFields.File), r.String(RpcFields.Architecture),
            r.Int32(RpcFields.Layers), r.Int32(RpcFields.Dim), r.Int32(RpcFields.Heads), r.Int32(RpcFields.KvHeads), r.Int32(RpcFields.Vocab),
            r.Int32(RpcFields.ContextLength), r.Int64(RpcFields.WeightBytes), r.String(RpcFields.Device), r.String(RpcFields.Tokenizer)));
    }

    /// <summary><c>devices.list</c>: every device of every backend the server found, and backends it could not use.</summary>
    public async Task<IReadOnlyList<DeviceInfo>> ListDevicesAsync(CancellationToken ct = default)
    {
        var list = await CallAsync(RpcMethods.DevicesList, default, ct).ConfigureAwait(false);
        return ReadList(list, RpcMethods.DevicesList, r => new DeviceInfo(r.String(RpcFields.Backend), r.String(RpcFields.Status),
            r.OptionalString(RpcFields.DeviceId), r.OptionalString(RpcFields.Name), r.OptionalString(RpcFields.Vendor), r.OptionalString(RpcFields.Kind),
            r.OptionalInt64(RpcFields.MemoryBytes), r.OptionalString(RpcFields.Driver), r.OptionalString(RpcFields.Reason)));
    }

    /// <summary><c>tokenize</c>: the model's token ids for <paramref name="text"/>, with BOS first when <paramref name="addBos"/>.</summary>
    public async Task<int[]> TokenizeAsync(string text, bool addBos = false, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        var reply = await CallAsync(RpcMethods.Tokenize, MsgValue.Map((RpcFields.Text, text), (RpcFields.AddBos, addBos)), ct).ConfigureAwait(false);
        return new ReplyReader(reply, RpcMethods.Tokenize).Int32Array(RpcFields.Tokens);
    }

    /// <summary><c>detokenize</c>: the text of token <paramref name="ids"/> (each must be in [0, vocab)).</summary>
    public async Task<string> DetokenizeAsync(IReadOnlyList<int> ids, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var items = new MsgValue[ids.Count];
        for (int i = 0; i < items.Length; i++) items[i] = ids[i];
        var reply = await CallAsync(RpcMethods.Detokenize, MsgValue.Map((RpcFields.Tokens, MsgValue.FromArray(items))), ct).ConfigureAwait(false);
        return new ReplyReader(reply, RpcMethods.Detokenize).String(RpcFields.Text);
    }

    /// <summary>
    /// <c>metrics</c>: the server's counters by name (requests, completed, cancelled, generated_tokens,
    /// prefix_cache_hit_tokens, kv_blocks_used, mean_batch_sequences, …; see docs/rpc.md). Numeric entries only.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, double>> MetricsAsync(CancellationToken ct = default)
    {
        var reply = await CallAsync(RpcMethods.Metrics, default, ct).ConfigureAwait(false);
        var map = new ReplyReader(reply, RpcMethods.Metrics).Map;
        var result = new Dictionary<string, double>(map.Count, StringComparer.Ordinal);
        foreach (var entry in map.AsMap())
        {
            if (entry.Key.TryGetString(out var name) && entry.Value.TryGetDouble(out double value))
                result[name] = value;
        }
        return result;
    }

    internal static GenerateResult ParseGenerateResult(MsgValue reply)
    {
        var r = new ReplyReader(reply, RpcMethods.Generate);
        var u = r.Child(RpcFields.Usage);
        var usage = new GenerateUsage(u.Int32(RpcFields.PromptTokens), u.Int32(RpcFields.CompletionTokens), u.Int32(RpcFields.CachedPromptTokens),
            u.OptionalDouble(RpcFields.TtftMs), u.OptionalDouble(RpcFields.TpotMs), u.Double(RpcFields.TotalMs), u.OptionalDouble(RpcFields.QueueMs),
            u.Int32(RpcFields.Preemptions), u.OptionalDouble(RpcFields.Joules));
        return new GenerateResult(r.String(RpcFields.Text), r.Int32Array(RpcFields.Tokens), r.String(RpcFields.FinishReason),
            r.OptionalString(RpcFields.Stop), r.UInt64(RpcFields.Seed), usage, r.OptionalString(RpcFields.Tier), r.OptionalString(RpcFields.TierReason));
    }

    private static T[] ReadList<T>(MsgValue list, string method, Func<ReplyReader, T> read)
    {
        if (list.Kind != MsgValueKind.Array) throw new InvalidDataException($"reply to '{method}' is a {list.Kind}, not an array");
        var result = new T[list.Count];
        for (int i = 0; i < result.Length; i++) result[i] = read(new ReplyReader(list[i], method));
        return result;
    }
}
