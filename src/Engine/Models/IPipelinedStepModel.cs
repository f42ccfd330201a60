namespace Serving.Engine.Models;

/// <summary>
/// A step model whose forward step can be split at the point where the device works alone: <see cref="BeginForward"/>
/// checks the batch, sends its inputs and submits the device work without waiting; <see cref="EndForward"/> waits for
/// it and returns the results exactly as <see cref="IStepModel.Forward(StepBatch, Span{float}, Span{int})"/> would.
/// Between the two the caller prepares the next step on the host (the scheduler plans it) while this one runs. The
/// model copies what it needs from the batch in <see cref="BeginForward"/>: the caller may fill another batch meanwhile,
/// and must not change this one until <see cref="EndForward"/> returns. Calls alternate strictly, one step at a time.
/// </summary>
public interface IPipelinedStepModel : IStepModel
{
    /// <summary>Starts the step (throws as <see cref="IStepModel.Forward(StepBatch, Span{float}, Span{int})"/> does for a bad batch).</summary>
    void BeginForward(StepBatch batch);

    /// <summary>Finishes the step begun last: logits of its sampled rows and argmax of its greedy rows, as Forward returns them.</summary>
    void EndForward(Span<float> logits, Span<int> greedyTokens);
}
