namespace Serving.Engine.Models;

/// <summary>
/// A decoder that runs one batched forward step over a paged KV cache. Implemented by <c>LlamaModel</c>
/// on a device; the scheduler drives it and owns which KV blocks belong to which sequence.
/// </summary>
public interface IStepModel
{
    /// <summary>V: logits per row.</summary>
    int VocabSize { get; }

    /// <summary>Most positions one sequence may hold (the model's context length, capped by configuration).</summary>
    int ContextLength { get; }

    /// <summary>Token slots per KV block.</summary>
    int KvBlockSize { get; }

    /// <summary>KV blocks available in the cache (ids 0..KvBlockCount-1).</summary>
    int KvBlockCount { get; }

    /// <summary>Most tokens one <see cref="Forward"/> may carry.</summary>
    int MaxBatchTokens { get; }

    /// <summary>Most sequences one <see cref="Forward"/> may carry.</summary>
    int MaxBatchSequences { get; }

    /// <summary>
    /// Runs the step: writes each token's k/v into its slot, attends causally within its sequence through the
    /// block table, and copies the logits of <see cref="StepBatch.LogitRows"/> into <paramref name="logits"/>
    /// ([R, V], row r for LogitRows[r]). Each row's result depends only on its own sequence, never on the batch.
    /// </summary>
    void Forward(StepBatch batch, Span<float> logits);
}
