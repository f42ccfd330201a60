namespace Serving.Client;

/// <summary>The <c>finish_reason</c> values a server sends (a newer server may add others).</summary>
public static class FinishReasons
{
    /// <summary>max_tokens generated, or the context is full.</summary>
    public const string Length = "length";
    /// <summary>A stop string was produced (see <see cref="GenerateResult.MatchedStop"/>).</summary>
    public const string Stop = "stop";
    /// <summary>The model produced its end-of-generation token (not included in the output).</summary>
    public const string Eos = "eos";
    /// <summary>Cancelled on the server (by shutdown, or by a <c>cancel</c> from another path).</summary>
    public const string Cancelled = "cancelled";
}

/// <summary>Token counts and timings of one request, as measured by the server (milliseconds, wall clock).</summary>
/// <param name="PromptTokens">Prompt length in tokens.</param>
/// <param name="CompletionTokens">Tokens generated (the end-of-generation token not counted).</param>
/// <param name="CachedPromptTokens">Prompt tokens served from the prefix cache instead of computed.</param>
/// <param name="TtftMs">Submission to first generated token; null when none was generated.</param>
/// <param name="TpotMs">Mean time between generated tokens after the first; null with fewer than 2.</param>
/// <param name="TotalMs">Submission to the end.</param>
/// <param name="QueueMs">Submission to admission into the running batch; null when never admitted.</param>
/// <param name="Preemptions">Times the request was preempted for lack of KV blocks (and recomputed).</param>
/// <param name="Joules">Energy attributed to the request where the device has a meter; null when not measured.</param>
public sealed record GenerateUsage(
    int PromptTokens,
    int CompletionTokens,
    int CachedPromptTokens,
    double? TtftMs,
    double? TpotMs,
    double TotalMs,
    double? QueueMs,
    int Preemptions,
    double? Joules);

/// <summary>The end of a generation.</summary>
/// <param name="Text">All generated text (the stop string excluded); equals the concatenation of the streamed texts.</param>
/// <param name="TokenIds">Generated token ids.</param>
/// <param name="FinishReason">Why it ended: one of <see cref="FinishReasons"/>.</param>
/// <param name="MatchedStop">The stop string that ended it, when <see cref="FinishReason"/> is stop.</param>
/// <param name="Seed">The sampling seed used (to reproduce the run).</param>
/// <param name="Usage">Counts and timings.</param>
/// <param name="Tier">The model tier that answered (null from a server without tiers).</param>
/// <param name="TierReason">Why that tier answered (docs/rpc.md: requested, confident, low_confidence, context, min_tier, shed, …).</param>
public sealed record GenerateResult(
    string Text,
    IReadOnlyList<int> TokenIds,
    string FinishReason,
    string? MatchedStop,
    ulong Seed,
    GenerateUsage Usage,
    string? Tier = null,
    string? TierReason = null);

/// <summary>
/// One item of <see cref="ServingClient.GenerateStreamAsync"/>: a streamed token (<see cref="Result"/> null), or
/// the final event carrying the result (always the last one).
/// </summary>
public sealed class GenerateEvent
{
    internal GenerateEvent(int tokenId, string text, GenerateResult? result, long timestamp)
    {
        TokenId = tokenId;
        Text = text;
        Result = result;
        Timestamp = timestamp;
    }

    /// <summary>The generated token id; −1 for a text-only piece (held-back text released at the end) and for the final event.</summary>
    public int TokenId { get; }

    /// <summary>Text now safe to show (may be empty: an incomplete UTF-8 character or a possible stop string is held back).</summary>
    public string Text { get; }

    /// <summary>The result, on the final event only.</summary>
    public GenerateResult? Result { get; }

    /// <summary>True for the final event.</summary>
    public bool IsFinal => Result is not null;

    /// <summary>
    /// When the client received the event, in <see cref="System.Diagnostics.Stopwatch.GetTimestamp"/> ticks —
    /// taken by the connection's reader, so latency measurements do not include the consumer's own delays.
    /// </summary>
    public long Timestamp { get; }
}
