using Serving.Engine.Models;

namespace Serving.Engine.Tuning;

/// <summary>
/// Times whole forward steps of a loaded model, as serving runs them: a decode step of B sequences that each add one
/// token at one context position (each sequence on its own KV blocks), or a prefill chunk of T tokens of one sequence
/// that wants the logits of its last token. Host time around <see cref="IStepModel.Forward(StepBatch, Span{float})"/>,
/// which ends by synchronizing on the device: the whole step, host work included.
/// </summary>
public sealed class StepTimer
{
    private readonly LlamaModel _model;
    private readonly TimingBudget _budget;
    private readonly StepBatch _batch;
    private readonly float[] _logits;

    /// <summary>A timer for <paramref name="model"/> (loaded with room for the batches and chunks to time).</summary>
    public StepTimer(LlamaModel model, TimingBudget budget)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _budget = budget;
        _batch = new StepBatch(model.MaxBatchTokens, model.MaxBatchSequences, model.MaxBlocksPerSequence);
        _logits = new float[(long)model.MaxBatchSequences * model.VocabSize];
    }

    /// <summary>A decode step of <paramref name="sequences"/> sequences at <paramref name="position"/>; null when the model cannot hold it.</summary>
    public TimingStats? Decode(int sequences, int position)
    {
        var m = _model;
        int blocksPer = position / m.KvBlockSize + 1;
        if (sequences > m.MaxBatchSequences || sequences > m.MaxBatchTokens || position >= m.ContextLength
            || (long)sequences * blocksPer > m.KvBlockCount || blocksPer > m.MaxBlocksPerSequence)
            return null;
        return OpTimer.TimeHost(() =>
        {
            _batch.Clear();
            for (int s = 0; s < sequences; s++)
            {
                _batch.SequenceCount++;
                for (int k = 0; k < blocksPer; k++) _batch.BlockTables[s * _batch.MaxBlocksPerSequence + k] = s * blocksPer + k;
                int slot = (s * blocksPer + position / m.KvBlockSize) * m.KvBlockSize + position % m.KvBlockSize;
                _batch.AddToken(1 + s % (m.VocabSize - 1), position, s, slot, wantLogits: true);
            }
            m.Forward(_batch, _logits);
        }, _budget);
    }

    /// <summary>A prefill chunk of <paramref name="tokens"/> tokens of one sequence from position 0; null when the model cannot hold it.</summary>
    public TimingStats? Prefill(int tokens)
    {
        var m = _model;
        int blocks = (tokens + m.KvBlockSize - 1) / m.KvBlockSize;
        if (tokens > m.MaxBatchTokens || tokens > m.ContextLength || blocks > m.KvBlockCount || blocks > m.MaxBlocksPerSequence)
            return null;
        return OpTimer.TimeHost(() =>
        {
            _batch.Clear();
            _batch.SequenceCount = 1;
            for (int k = 0; k < blocks; k++) _batch.BlockTables[k] = k;
            for (int t = 0; t < tokens; t++)
                _batch.AddToken(1 + t % (m.VocabSize - 1), t, 0, t, wantLogits: t == tokens - 1);
            m.Forward(_batch, _logits);
        }, _budget);
    }
}
