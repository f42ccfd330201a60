using System.Threading.Channels;

namespace Serving.Engine.Scheduling;

/// <summary>
/// A submitted request: its streamed output, its final result, and a way to cancel it. The chunk channel is
/// unbounded (the scheduler never waits for a slow reader; at most MaxTokens chunks plus one accumulate).
/// </summary>
public sealed class GenerationHandle
{
    private readonly Sequence _sequence;

    internal GenerationHandle(Sequence sequence, ChannelReader<GenerationChunk> chunks, Task<GenerationResult> completion)
    {
        _sequence = sequence;
        Chunks = chunks;
        Completion = completion;
    }

    /// <summary>The request's <see cref="GenerationRequest.Id"/>.</summary>
    public string RequestId => _sequence.Request.Id;

    /// <summary>Output pieces in order; completes when the generation ends (read <see cref="Completion"/> for why).</summary>
    public ChannelReader<GenerationChunk> Chunks { get; }

    /// <summary>The final result. Never faults: failures end with <see cref="FinishReason.Error"/>.</summary>
    public Task<GenerationResult> Completion { get; }

    /// <summary>Cancels the request (no-op once it has ended). Its KV blocks are freed before the next step.</summary>
    public void Cancel() => _sequence.RequestCancel();
}
