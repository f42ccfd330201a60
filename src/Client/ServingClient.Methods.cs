using Serving.Protocol.MessagePack;

namespace Serving.Client;

// The typed methods of docs/rpc.md. Each is a CallAsync plus a strict read of the reply: a reply of the wrong
// shape throws InvalidDataException naming the method and field.
public sealed partial class ServingClient
{
    /// <summary><c>server.info</c>: software, loaded model, device, whether auth is required (public: no token needed).</summary>
    public async Task<ServerInfo> InfoAsync(CancellationToken ct = default)
    {
        var r = new ReplyReader(await CallAsync("server.info", default, ct).ConfigureAwait(false), "server.info");
        return new ServerInfo(r.String("name"), r.String("version"), r.Int32("contract_version"), r.String("model"),
            r.String("device"), r.Bool("auth_required"), r.StringArray("methods"));
    }

    /// <summary><c>health</c>: serving state and queue sizes (public: no token needed).</summary>
    public async Task<HealthStatus> HealthAsync(CancellationToken ct = default)
    {
        var r = new ReplyReader(await CallAsync("health", default, ct).ConfigureAwait(false), "health");
        string status = r.String("status");
        // Older servers send no "ready": there "ok" was the only state that took requests.
        return new HealthStatus(status, r.OptionalBool("ready") ?? status == "ok", r.Int32("running"), r.Int32("waiting"),
            r.Double("uptime_s"), r.OptionalString("device"), r.OptionalString("reason"));
    }

    /// <summary><c>models.list</c>: the loaded models.</summary>
    public async Task<IReadOnlyList<ModelInfo>> ListModelsAsync(CancellationToken ct = default)
    {
        var list = await CallAsync("models.list", default, ct).ConfigureAwait(false);
        return ReadList(list, "models.list", r => new ModelInfo(r.String("id"), r.String("file"), r.String("architecture"),
            r.Int32("layers"), r.Int32("dim"), r.Int32("heads"), r.Int32("kv_heads"), r.Int32("vocab"),
            r.Int32("context_length"), r.Int64("weight_bytes"), r.String("device"), r.String("tokenizer")));
    }

    /// <summary><c>devices.list</c>: every device of every backend the server found, and backends it could not use.</summary>
    public async Task<IReadOnlyList<DeviceInfo>> ListDevicesAsync(CancellationToken ct = default)
    {
        var list = await CallAsync("devices.list", default, ct).ConfigureAwait(false);
        return ReadList(list, "devices.list", r => new DeviceInfo(r.String("backend"), r.String("status"),
            r.OptionalString("id"), r.OptionalString("name"), r.OptionalString("vendor"), r.OptionalString("kind"),
            r.OptionalInt64("memory_bytes"), r.OptionalString("driver"), r.OptionalString("reason")));
    }

    /// <summary><c>tokenize</c>: the model's token ids for <paramref name="text"/>, with BOS first when <paramref name="addBos"/>.</summary>
    public async Task<int[]> TokenizeAsync(string text, bool addBos = false, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        var reply = await CallAsync("tokenize", MsgValue.Map(("text", text), ("add_bos", addBos)), ct).ConfigureAwait(false);
        return new ReplyReader(reply, "tokenize").Int32Array("tokens");
    }

    /// <summary><c>detokenize</c>: the text of token <paramref name="ids"/> (each must be in [0, vocab)).</summary>
    public async Task<string> DetokenizeAsync(IReadOnlyList<int> ids, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var items = new MsgValue[ids.Count];
        for (int i = 0; i < items.Length; i++) items[i] = ids[i];
        var reply = await CallAsync("detokenize", MsgValue.Map(("tokens", MsgValue.FromArray(items))), ct).ConfigureAwait(false);
        return new ReplyReader(reply, "detokenize").String("text");
    }

    /// <summary>
    /// <c>metrics</c>: the server's counters by name (requests, completed, cancelled, generated_tokens,
    /// prefix_cache_hit_tokens, kv_blocks_used, mean_batch_sequences, …; see docs/rpc.md). Numeric entries only.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, double>> MetricsAsync(CancellationToken ct = default)
    {
        var reply = await CallAsync("metrics", default, ct).ConfigureAwait(false);
        var map = new ReplyReader(reply, "metrics").Map;
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
        var r = new ReplyReader(reply, "generate");
        var u = r.Child("usage");
        var usage = new GenerateUsage(u.Int32("prompt_tokens"), u.Int32("completion_tokens"), u.Int32("cached_prompt_tokens"),
            u.OptionalDouble("ttft_ms"), u.OptionalDouble("tpot_ms"), u.Double("total_ms"), u.OptionalDouble("queue_ms"),
            u.Int32("preemptions"), u.OptionalDouble("joules"));
        return new GenerateResult(r.String("text"), r.Int32Array("tokens"), r.String("finish_reason"),
            r.OptionalString("stop"), r.UInt64("seed"), usage);
    }

    private static T[] ReadList<T>(MsgValue list, string method, Func<ReplyReader, T> read)
    {
        if (list.Kind != MsgValueKind.Array) throw new InvalidDataException($"reply to '{method}' is a {list.Kind}, not an array");
        var result = new T[list.Count];
        for (int i = 0; i < result.Length; i++) result[i] = read(new ReplyReader(list[i], method));
        return result;
    }
}
