namespace Serving.Engine.Models;

/// <summary>
/// The tokens of one forward step, from one or more sequences (continuous batching: prefill chunks and
/// decode tokens mixed). Legend: T = tokens in the step, S = sequences in the step.
/// All arrays are owned by the caller and may be reused between steps; only the first
/// <see cref="TokenCount"/> / <see cref="SequenceCount"/> entries are read.
/// </summary>
public sealed class StepBatch
{
    /// <summary>Creates a batch with room for <paramref name="maxTokens"/> tokens and <paramref name="maxSequences"/> sequences.</summary>
    public StepBatch(int maxTokens, int maxSequences, int maxBlocksPerSequence)
    {
        Tokens = new int[maxTokens];
        Positions = new int[maxTokens];
        SequenceRows = new int[maxTokens];
        Slots = new int[maxTokens];
        LogitRows = new int[maxTokens];
        Greedy = new bool[maxTokens];
        NonFinite = new bool[maxTokens];
        BlockTables = new int[maxSequences * maxBlocksPerSequence];
        MaxBlocksPerSequence = maxBlocksPerSequence;
    }

    /// <summary>T: tokens used in this step.</summary>
    public int TokenCount { get; set; }

    /// <summary>S: sequences (rows of <see cref="BlockTables"/>) used in this step.</summary>
    public int SequenceCount { get; set; }

    /// <summary>[T] token ids.</summary>
    public int[] Tokens { get; }

    /// <summary>[T] absolute position of each token in its sequence.</summary>
    public int[] Positions { get; }

    /// <summary>[T] which row of <see cref="BlockTables"/> (which sequence) each token belongs to.</summary>
    public int[] SequenceRows { get; }

    /// <summary>[T] KV slot (block · blockSize + offset) each token's k/v is written to.</summary>
    public int[] Slots { get; }

    /// <summary>[S, MaxBlocksPerSequence] block ids of each sequence, in position order.</summary>
    public int[] BlockTables { get; }

    /// <summary>Columns of <see cref="BlockTables"/>.</summary>
    public int MaxBlocksPerSequence { get; }

    /// <summary>Number of entries of <see cref="LogitRows"/> in use (R).</summary>
    public int LogitCount { get; set; }

    /// <summary>[R] token rows whose logits the caller wants (usually the last token of each sequence's chunk), ascending.</summary>
    public int[] LogitRows { get; }

    /// <summary>
    /// [R] true when the caller wants only the index of logit row r's largest value (greedy sampling: first index on
    /// ties, NaN never wins) instead of its V logits: the step then computes it on the device and returns one int
    /// for the row, not V floats (<see cref="IStepModel.Forward(StepBatch, Span{float}, Span{int})"/>).
    /// </summary>
    public bool[] Greedy { get; }

    /// <summary>
    /// [R] written by the step: true when logit row r's logits were not all finite (a NaN or an infinity: corrupt
    /// weights, or activations that overflowed). Its token — argmax or sampled — means nothing and must not be used.
    /// </summary>
    public bool[] NonFinite { get; }

    /// <summary>G: entries of <see cref="Greedy"/> (among the first R) that are true.</summary>
    public int GreedyCount { get; private set; }

    /// <summary>Appends one token. Returns its row. <paramref name="greedy"/> (only with <paramref name="wantLogits"/>):
    /// the caller wants the row's argmax, not its logits.</summary>
    public int AddToken(int token, int position, int sequenceRow, int slot, bool wantLogits, bool greedy = false)
    {
        int t = TokenCount++;
        Tokens[t] = token;
        Positions[t] = position;
        SequenceRows[t] = sequenceRow;
        Slots[t] = slot;
        if (wantLogits)
        {
            Greedy[LogitCount] = greedy;
            if (greedy) GreedyCount++;
            LogitRows[LogitCount++] = t;
        }
        return t;
    }

    /// <summary>Empties the batch for reuse.</summary>
    public void Clear()
    {
        Array.Clear(NonFinite, 0, LogitCount);
        TokenCount = 0;
        SequenceCount = 0;
        LogitCount = 0;
        GreedyCount = 0;
    }
}
