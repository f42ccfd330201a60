using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Client;

/// <summary>
/// The arguments of one <c>generate</c> call. Only properties that are set are sent (the server refuses unknown
/// keys and applies its own defaults to missing ones); ranges are checked by the server, whose refusal arrives as
/// a <see cref="RpcException"/> with code bad_request. Give exactly one of <see cref="Prompt"/> and
/// <see cref="Tokens"/>.
/// </summary>
public sealed record GenerateOptions
{
    /// <summary>Prompt text, tokenized by the server (with BOS per <see cref="AddBos"/> or the model's default).</summary>
    public string? Prompt { get; init; }

    /// <summary>Prompt as token ids, used as-is (no BOS added): exact prompt lengths for benchmarks.</summary>
    public IReadOnlyList<int>? Tokens { get; init; }

    /// <summary>Most tokens to generate (server default 128).</summary>
    public int? MaxTokens { get; init; }

    /// <summary>Sampling temperature; 0 = greedy (server default 0.8).</summary>
    public double? Temperature { get; init; }

    /// <summary>Keep the k most likely tokens; 0 = off (server default 40).</summary>
    public int? TopK { get; init; }

    /// <summary>Nucleus sampling mass in (0, 1] (server default 0.95).</summary>
    public double? TopP { get; init; }

    /// <summary>Drop tokens below this fraction of the best token's probability (server default 0.05).</summary>
    public double? MinP { get; init; }

    /// <summary>Repetition penalty; 1 = off (server default 1).</summary>
    public double? RepeatPenalty { get; init; }

    /// <summary>How many recent tokens the repetition penalty looks at (server default 64).</summary>
    public int? RepeatLastN { get; init; }

    /// <summary>Sampling seed: the same seed gives the same tokens on the same backend (server default: random, reported in the result).</summary>
    public ulong? Seed { get; init; }

    /// <summary>Stop strings (at most 16); output ends before the first one produced.</summary>
    public IReadOnlyList<string>? Stop { get; init; }

    /// <summary>Whether to prepend BOS when tokenizing <see cref="Prompt"/> (server default: the model's setting).</summary>
    public bool? AddBos { get; init; }

    /// <summary>A model tier's name (or the loaded model's id), or "auto" for the server's routing policy (not_found when no such
    /// tier is loaded); null = auto (with one tier, that tier).</summary>
    public string? Model { get; init; }

    /// <summary>The cheapest tier the request accepts (auto routing); null = any.</summary>
    public string? MinTier { get; init; }

    /// <summary>Whether a cheaper tier may answer when the chosen one is overloaded; null = the server's default (auto: yes, a named tier: no).</summary>
    public bool? AllowShed { get; init; }

    /// <summary>The argument map sent on the wire: only the set properties, plus <c>stream</c>.</summary>
    internal MsgValue ToArgs(bool stream)
    {
        var entries = new List<(MsgValue, MsgValue)>(16);
        if (Prompt is not null) entries.Add((RpcFields.Prompt, Prompt));
        if (Tokens is not null)
        {
            var ids = new MsgValue[Tokens.Count];
            for (int i = 0; i < ids.Length; i++) ids[i] = Tokens[i];
            entries.Add((RpcFields.Tokens, MsgValue.FromArray(ids)));
        }
        if (MaxTokens is { } maxTokens) entries.Add((RpcFields.MaxTokens, maxTokens));
        if (Temperature is { } temperature) entries.Add((RpcFields.Temperature, temperature));
        if (TopK is { } topK) entries.Add((RpcFields.TopK, topK));
        if (TopP is { } topP) entries.Add((RpcFields.TopP, topP));
        if (MinP is { } minP) entries.Add((RpcFields.MinP, minP));
        if (RepeatPenalty is { } penalty) entries.Add((RpcFields.RepeatPenalty, penalty));
        if (RepeatLastN is { } lastN) entries.Add((RpcFields.RepeatLastN, lastN));
        if (Seed is { } seed) entries.Add((RpcFields.Seed, seed));
        if (Stop is not null)
        {
            var stops = new MsgValue[Stop.Count];
            for (int i = 0; i < stops.Length; i++) stops[i] = Stop[i];
            entries.Add((RpcFields.Stop, MsgValue.FromArray(stops)));
        }
        if (AddBos is { } addBos) entries.Add((RpcFields.AddBos, addBos));
        if (Model is not null) entries.Add((RpcFields.Model, Model));
        if (MinTier is not null) entries.Add((RpcFields.MinTier, MinTier));
        if (AllowShed is { } shed) entries.Add((RpcFields.AllowShed, shed));
        if (stream) entries.Add((RpcFields.Stream, true));
        return MsgValue.Map([.. entries]);
    }
}
