using System.Threading.Channels;
using Serving.Engine.Scheduling;

namespace Serving.Engine.Routing;

/// <summary>The end of a routed request: the answering tier's result, which tier it was and why.</summary>
/// <param name="Result">The answering tier's result (its text, tokens, finish reason, usage).</param>
/// <param name="Tier">The tier that answered.</param>
/// <param name="Reason">Why that tier (<see cref="TierReasons.Wire"/>).</param>
/// <param name="Confidence">The last probe's confidence (of the tier that was judged), or null when nothing was probed.</param>
/// <param name="Tried">Every tier the request ran on, in order (the answering one last).</param>
/// <param name="TimeToFirstChunk">From submission to the first text or token the client got (hold-back and escalation included); null if none.</param>
/// <param name="TotalTime">From submission to the end.</param>
public sealed record RoutedResult(GenerationResult Result, Tier Tier, TierReason Reason, Confidence? Confidence, IReadOnlyList<string> Tried,
    TimeSpan? TimeToFirstChunk, TimeSpan TotalTime);

/// <summary>A routed request: what the client may see (held-back tokens only once its tier is settled) and its end.</summary>
public sealed class RoutedGeneration
{
    internal RoutedGeneration(string requestId, ChannelReader<GenerationChunk> chunks, Task<RoutedResult> completion)
    {
        RequestId = requestId;
        Chunks = chunks;
        Completion = completion;
    }

    /// <summary>The request's id.</summary>
    public string RequestId { get; }

    /// <summary>Output pieces in order, from the answering tier only: nothing streamed is ever retracted.</summary>
    public ChannelReader<GenerationChunk> Chunks { get; }

    /// <summary>The end. Never faults: failures end with <see cref="FinishReason.Error"/>.</summary>
    public Task<RoutedResult> Completion { get; }
}
