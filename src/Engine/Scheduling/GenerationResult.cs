namespace Serving.Engine.Scheduling;

/// <summary>Why a generation ended.</summary>
public enum FinishReason
{
    /// <summary>MaxTokens generated, or the context is full.</summary>
    Length,
    /// <summary>A stop string was produced.</summary>
    Stop,
    /// <summary>The model produced an end-of-generation token (not included in the output).</summary>
    EndOfGeneration,
    /// <summary>Cancelled by the caller (token or <see cref="GenerationHandle.Cancel"/>) or by a drain's deadline.</summary>
    Cancelled,
    /// <summary>Failed; see <see cref="GenerationResult.Error"/>.</summary>
    Error,
}

/// <summary>One piece of streamed output.</summary>
/// <param name="TokenId">The generated token, or <see cref="NoToken"/> for a last piece that only releases held-back text.</param>
/// <param name="Text">Text now safe to show; may be empty (an incomplete character, or a possible stop string held back).</param>
/// <param name="LogProb">With <see cref="GenerationRequest.ScoreTokens"/>: ln p(token) under the model's raw distribution; else NaN.</param>
/// <param name="Entropy">With <see cref="GenerationRequest.ScoreTokens"/>: the entropy of that distribution in nats; else NaN.</param>
public readonly record struct GenerationChunk(int TokenId, string Text, float LogProb = float.NaN, float Entropy = float.NaN)
{
    /// <summary><see cref="TokenId"/> of a text-only piece.</summary>
    public const int NoToken = -1;
}

/// <summary>Token counts and timings of one request. Times are read from the scheduler's <see cref="TimeProvider"/> (the system clock unless one was given).</summary>
/// <param name="PromptTokens">Prompt length in tokens.</param>
/// <param name="CompletionTokens">Tokens generated (the end-of-generation token is not counted).</param>
/// <param name="CachedPromptTokens">Prompt tokens served from the prefix cache at first admission (not recomputed).</param>
/// <param name="TimeToFirstToken">From submission to the first generated token; null if none was generated.</param>
/// <param name="TimePerOutputToken">Mean time between generated tokens after the first; null with fewer than 2 tokens.</param>
/// <param name="TotalTime">From submission to the end.</param>
/// <param name="QueueTime">From submission to first admission into the running batch; null if never admitted.</param>
/// <param name="Preemptions">Times the request was preempted (its KV freed and recomputed later).</param>
/// <param name="DraftTokens">Speculative decoding: draft tokens proposed for this request and verified (0 without a draft).</param>
/// <param name="DraftAcceptedTokens">Of those, the ones the target accepted.</param>
public readonly record struct GenerationUsage(
    int PromptTokens,
    int CompletionTokens,
    int CachedPromptTokens,
    TimeSpan? TimeToFirstToken,
    TimeSpan? TimePerOutputToken,
    TimeSpan TotalTime,
    TimeSpan? QueueTime,
    int Preemptions,
    int DraftTokens = 0,
    int DraftAcceptedTokens = 0)
{
    /// <summary>Accepted over proposed draft tokens, or null when none was proposed.</summary>
    public double? DraftAcceptanceRate => DraftTokens > 0 ? (double)DraftAcceptedTokens / DraftTokens : null;
}

/// <summary>The end of a generation.</summary>
/// <param name="RequestId">The request's <see cref="GenerationRequest.Id"/>.</param>
/// <param name="FinishReason">Why it ended.</param>
/// <param name="TokenIds">Generated tokens (the end-of-generation token excluded; a token completing a stop string included).</param>
/// <param name="Text">All emitted text, the stop string excluded: the concatenation of the streamed chunks.</param>
/// <param name="MatchedStop">The stop string that ended it, for <see cref="FinishReason.Stop"/>.</param>
/// <param name="Seed">The sampling seed used (the given one or the random one picked), to reproduce the run.</param>
/// <param name="Usage">Counts and timings.</param>
/// <param name="Error">The cause, for <see cref="FinishReason.Error"/>.</param>
public sealed record GenerationResult(
    string RequestId,
    FinishReason FinishReason,
    IReadOnlyList<int> TokenIds,
    string Text,
    string? MatchedStop,
    ulong Seed,
    GenerationUsage Usage,
    Exception? Error);
