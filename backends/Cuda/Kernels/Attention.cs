using ILGPU;
using Serving.Abstractions;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>
/// Paged causal GQA attention: one warp (serial: one thread) per (query row t, head h), kv head h / (H / Hkv). For each
/// position j ≤ Positions[t] of row t's sequence, read from slot BlockTables[seq, j / BlockSize] · BlockSize + j %
/// BlockSize, the lanes reduce q·k (each lane its elements d = lane, lane + 32, …) and update an online softmax; the
/// output row itself holds the running Σ p·v (each lane owns its elements, so no two lanes touch one) and is divided by
/// Σ p at the end. A row's result depends on its own query and sequence only. Index values are clamped or skipped:
/// a sequence outside the table writes nothing, a position past MaxPosition or the table is clamped, a block id
/// outside the layer is skipped.
/// </summary>
internal static class Attention
{
    /// <summary>Launch parameters.</summary>
    public struct Shape
    {
        /// <summary>Query rows.</summary>
        public int T;

        /// <summary>Query heads.</summary>
        public int Heads;

        /// <summary>Query heads per kv head.</summary>
        public int Group;

        /// <summary>Head dim.</summary>
        public int HeadDim;

        /// <summary>Slots per block.</summary>
        public int BlockSize;

        /// <summary>Blocks per layer.</summary>
        public int Blocks;

        /// <summary>Block-table rows (sequences).</summary>
        public int Sequences;

        /// <summary>Block-table columns.</summary>
        public int TableCols;

        /// <summary>The largest position any row may attend to (MaxPosition, within the table).</summary>
        public int MaxPosition;

        /// <summary>Logit scale.</summary>
        public float Scale;
    }

    private struct QDotK : ILaneSum
    {
        public ArrayView<float> Q, CacheF32;
        public ArrayView<ushort> CacheF16;
        public long QBase, KBase;
        public int HeadDim, F16;

        public readonly float Partial(int unit, int lane)
        {
            float s = 0f;
            for (int d = lane; d < HeadDim; d += Lanes.Count)
                s += Q[QBase + d] * Cached(CacheF32, CacheF16, F16, KBase + d);
            return s;
        }
    }

    /// <summary>An element of the cache as f32 (f16 widened exactly).</summary>
    public static float Cached(ArrayView<float> f32, ArrayView<ushort> f16, int isF16, long at)
        => isF16 != 0 ? Scalars.HalfToFloat(f16[at]) : f32[at];

    /// <summary>The kernel: units = T · H.</summary>
    public static void Kernel<TM>(ArrayView<float> q, ArrayView<float> output, ArrayView<float> cacheF32, ArrayView<ushort> cacheF16,
        KvPlaneShape plane, ArrayView<int> positions, ArrayView<int> sequence, ArrayView<int> blockTables, Shape shape)
        where TM : struct, IKernelMode
    {
        int unit = Lanes.Unit<TM>();
        if (unit >= shape.T * shape.Heads) return;
        int lane = Lanes.Lane<TM>();
        int step = default(TM).Serial ? 1 : Lanes.Count;
        int t = unit / shape.Heads, h = unit % shape.Heads, g = h / shape.Group;
        int seq = sequence[t];
        int last = positions[t];
        if ((uint)seq >= (uint)shape.Sequences || last < 0) return;
        last = Math.Min(last, shape.MaxPosition);
        long rowBase = (long)unit * shape.HeadDim;
        for (int d = lane; d < shape.HeadDim; d += step)
            output[rowBase + d] = 0f;
        float max = float.NegativeInfinity, total = 0f;
        var dot = new QDotK { Q = q, CacheF32 = cacheF32, CacheF16 = cacheF16, QBase = rowBase, HeadDim = shape.HeadDim, F16 = plane.F16 };
        for (int j = 0; j <= last; j++)
        {
            int block = blockTables[(long)seq * shape.TableCols + j / shape.BlockSize];
            if ((uint)block >= (uint)shape.Blocks) continue;
            long slot = (long)block * shape.BlockSize + j % shape.BlockSize;
            long rowOffset = slot * plane.RowElements + (long)g * shape.HeadDim;
            dot.KBase = plane.KOffset + rowOffset;
            float score = Lanes.SumAll<TM, QDotK>(dot, unit, lane) * shape.Scale;
            float next = MathF.Max(max, score);
            float correction = MathF.Exp(max - next);
            float p = MathF.Exp(score - next);
            total = total * correction + p;
            long vBase = plane.VOffset + rowOffset;
            for (int d = lane; d < shape.HeadDim; d += step)
                output[rowBase + d] = output[rowBase + d] * correction + p * Cached(cacheF32, cacheF16, plane.F16, vBase + d);
            max = next;
        }
        if (total > 0f)
        {
            float inv = 1f / total;
            for (int d = lane; d < shape.HeadDim; d += step)
                output[rowBase + d] = output[rowBase + d] * inv;
        }
    }

    /// <summary>Records Attention.</summary>
    public static void Record(CudaStream s, in TensorView q, CudaKvCache cache, int layer, in AttentionBatch batch, in TensorView output, int warpsPerGroup)
    {
        KvCacheLayout l = cache.Layout;
        var shape = new Shape
        {
            T = q.Rows,
            Heads = batch.Heads,
            Group = batch.Heads / l.KvHeads,
            HeadDim = l.HeadDim,
            BlockSize = l.BlockSize,
            Blocks = l.Blocks,
            Sequences = batch.BlockTables.Rows,
            TableCols = batch.BlockTables.Cols,
            MaxPosition = Math.Min(batch.MaxPosition, batch.BlockTables.Cols * l.BlockSize - 1),
            Scale = batch.Scale,
        };
        s.Kernels.Attention(s.Handle, s.Owner.Units((long)q.Rows * batch.Heads, warpsPerGroup), s.F32(q), s.F32(output), cache.F32, cache.F16,
            cache.Plane(layer), s.I32(batch.Positions), s.I32(batch.Sequence), s.I32(batch.BlockTables), shape);
    }
}
