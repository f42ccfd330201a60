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

    /// <summary>Most tokens one <c>Forward</c> may carry.</summary>
    int MaxBatchTokens { get; }

    /// <summary>Most sequences one <c>Forward</c> may carry.</summary>
    int MaxBatchSequences { get; }

    /// <summary>
    /// Runs the step: writes each token's k/v into its slot and attends causally within its sequence through the
    /// block table. For the logit rows (<see cref="StepBatch.LogitRows"/>, R of them) it returns, in row order:
    /// for each row that is not <see cref="StepBatch.Greedy"/>, its V logits, packed into <paramref name="logits"/>
    /// ([R − G, V]: the k-th such row at k·V); for each greedy row r, the index of its largest logit (first on ties,
    /// NaN never wins) in <paramref name="greedyTokens"/>[r] (length ≥ R when G &gt; 0; entries of other rows are left
    /// as they were). Each row's result depends only on its own sequence, never on the batch, so a greedy row's index
    /// equals the argmax of the logits the same row would have returned. It sets <see cref="StepBatch.NonFinite"/>[r] for
    /// every logit row whose logits hold a NaN or an infinity (whose token is then meaningless).
    /// </summary>
    void Forward(StepBatch batch, Span<float> logits, Span<int> greedyTokens);

    /// <summary>Runs a step with no greedy rows: the logits of every logit row r at r·V in <paramref name="logits"/> ([R, V]).</summary>
    void Forward(StepBatch batch, Span<float> logits) => Forward(batch, logits, Span<int>.Empty);
}
