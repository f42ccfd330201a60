using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>
/// Paged causal GQA attention: row t, head h reads kv head h / (H / Hkv) at positions 0..Positions[t] of sequence
/// Sequence[t], position j in slot BlockTables[seq, j / BlockSize] · BlockSize + j % BlockSize. Dots, softmax and the
/// weighted sum in f64, each row on its own (batch-invariant whatever ContiguousSequences says).
/// </summary>
internal static class Attention
{
    public static void Run(in TensorView q, ScalarKvCache cache, int layer, in AttentionBatch batch, in TensorView output)
    {
        const string op = nameof(Attention);
        KvCacheLayout l = cache.Layout;
        int[] pos = Views.ReadInts(batch.Positions), seq = Views.ReadInts(batch.Sequence), tables = Views.ReadInts(batch.BlockTables);
        int m = batch.BlockTables.Cols, dh = l.HeadDim, group = batch.Heads / l.KvHeads;
        // Every index value is checked before anything is written.
        for (int t = 0; t < q.Rows; t++)
        {
            Views.CheckIndex(op, "sequence", seq[t], batch.BlockTables.Rows);
            Views.CheckIndex(op, "position", pos[t], (long)batch.MaxPosition + 1);
            for (int b = 0; b <= pos[t] / l.BlockSize; b++)
                Views.CheckIndex(op, "block id", tables[seq[t] * m + b], l.Blocks);
        }
        var scores = new double[batch.MaxPosition + 1];
        var acc = new double[dh];
        for (int t = 0; t < q.Rows; t++)
        {
            float[] qr = Views.ReadRow(q, t);
            var outRow = new float[q.Cols];
            for (int h = 0; h < batch.Heads; h++)
            {
                int g = h / group;
                double max = double.NegativeInfinity;
                for (int j = 0; j <= pos[t]; j++)
                {
                    long slot = (long)tables[seq[t] * m + j / l.BlockSize] * l.BlockSize + j % l.BlockSize;
                    double dot = 0;
                    for (int i = 0; i < dh; i++) dot += (double)qr[h * dh + i] * cache.Read(layer, slot, false, g * dh + i);
                    scores[j] = batch.Scale * dot;
                    max = Math.Max(max, scores[j]);
                }
                double sum = 0;
                Array.Clear(acc);
                for (int j = 0; j <= pos[t]; j++)
                {
                    long slot = (long)tables[seq[t] * m + j / l.BlockSize] * l.BlockSize + j % l.BlockSize;
                    double p = Math.Exp(scores[j] - max);
                    sum += p;
                    for (int i = 0; i < dh; i++) acc[i] += p * cache.Read(layer, slot, true, g * dh + i);
                }
                for (int i = 0; i < dh; i++) outRow[h * dh + i] = (float)(acc[i] / sum);
            }
            Views.WriteRow(output, t, outRow);
        }
    }
}
