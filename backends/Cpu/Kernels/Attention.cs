using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using Serving.Backends.Cpu.Kernels.Formats;
using Serving.Backends.Cpu.Kernels.MatMul;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// Causal paged GQA attention. Work item (t, g): query row t and kv head g together with the G = H / Hkv query heads
/// that share it (heads g·G .. g·G + G − 1), over the keys at positions 0..pos[t] of sequence seq[t]; position p
/// lives in cache row layerRow0 + table[seq, p / BlockSize]·BlockSize + p % BlockSize. The block table is walked
/// block by block (rows of a block are consecutive), and each K / V slice of a block is read once for all G heads
/// (it stays in L1 while the heads take turns).
/// Three passes per item: (1) scaled scores of every position into a scratch row per head, four positions per
/// sweep of q; (2) per head, the max, e = exp(s − max) in place, Σ e; (3) acc_h += e·V row, four positions per
/// sweep of acc, then output = acc / Σ e. The vector loops are <see cref="VectorDriver"/>'s; this file holds their
/// operators (the dots are <see cref="FloatDot"/>'s, with one accumulator per position). The arithmetic of an item
/// depends only on its own row's position, sequence, q and the cache (never on T, the other rows or which worker runs
/// it), so results are batch-invariant.
/// The cache's element type is TL (<see cref="F32Row"/> or <see cref="F16Row"/>). An f16 cache moves half the bytes: each
/// block's K (pass 1) and V (pass 3) slice is widened once into an f32 block in the worker's scratch, and the G heads
/// then read that, so the conversion is paid once per element, not once per head. The widening is the cheap one
/// (<see cref="HalfVector.WidenScaled"/>: each value times 2^-112, four integer operations per vector) with the 2^112
/// moved onto q and the softmax weights, which gives the f32 cache's arithmetic on the exactly widened values, bit for
/// bit; a block holding ∞ or NaN, or a q with |q| ≥ 2^16, takes the exact widening instead.
/// Large contexts are bound by memory bandwidth (each K and V element is read once per item); small ones by the
/// per-position dot and axpy work.
/// </summary>
internal static unsafe class Attention
{
    /// <summary>Score rows are padded to a multiple of this many floats (the widest vector, 16 lanes).</summary>
    private const int Pad = 16;

    /// <summary>
    /// Query heads per kv head up to which an f16 cache is read in place (<see cref="F16ScaledRow"/>: converted at every
    /// load, the block only checked for ∞/NaN first) instead of widened into scratch once for the group.
    /// </summary>
    private const int InPlaceGroup = 1;

    /// <summary>Positions handled per sweep over a head's q (scores) or acc (values).</summary>
    private const int Unroll = 4;

    private struct Job
    {
        public float* Q;            // [T, H·Dh]
        public float* Output;       // [T, H·Dh]
        public byte* K, V;          // cache rows of Hkv·Dh elements of TL
        public long LayerRow0;      // cache row of slot 0 of the layer
        public int* Positions;      // [T]
        public int* Sequence;       // [T]
        public int* Tables;         // [S, MaxBlocks]
        public int MaxBlocks, BlockSize;
        public int Heads, KvHeads, HeadDim;
        public float Scale;
        public float* Scratch;      // per worker: ScratchFloats floats (scores [G, stride], acc [G, Dh], 1/Σe [G])
        public long ScratchFloats;
    }

    /// <summary>
    /// Floats of per-worker scratch for contexts up to <paramref name="maxPositions"/> positions with
    /// <paramref name="group"/> = H / Hkv query heads per kv head: G score rows padded to 16 floats, G
    /// accumulators of <paramref name="headDim"/> floats and G softmax normalizers, the total rounded up to 16
    /// floats (64 bytes) so every worker's part starts aligned; plus, when the cache type <paramref name="converts"/>,
    /// one widened block of <paramref name="blockSize"/> × <paramref name="headDim"/> floats and the group's q scaled by 2^112.
    /// </summary>
    public static long ScratchFloats(int maxPositions, int headDim, int group, int blockSize, bool converts)
        => RoundUp((long)group * (RoundUp(maxPositions) + headDim + 1)) + (converts ? RoundUp((long)blockSize * headDim) + RoundUp((long)group * headDim) : 0);

    private static long RoundUp(long n) => (n + Pad - 1) & ~(long)(Pad - 1);

    /// <summary>Runs the op on validated pointers (every position's block id already checked); TL is the cache's element type.</summary>
    public static void Run<TL>(WorkerPool pool, float* q, float* output, byte* k, byte* v, long layerRow0,
        int* positions, int* sequence, int* tables, int maxBlocks, int blockSize,
        int t, int heads, int kvHeads, int headDim, float scale, float* scratch, long scratchFloats, long work) where TL : struct, IFloatRow
    {
        var job = new Job
        {
            Q = q, Output = output, K = k, V = v, LayerRow0 = layerRow0, Positions = positions, Sequence = sequence,
            Tables = tables, MaxBlocks = maxBlocks, BlockSize = blockSize, Heads = heads, KvHeads = kvHeads,
            HeadDim = headDim, Scale = scale, Scratch = scratch, ScratchFloats = scratchFloats,
        };
        pool.Run(&Item<TL>, &job, t * kvHeads, work);
    }

    private static void Item<TL>(void* context, int item, int worker) where TL : struct, IFloatRow
    {
        var job = (Job*)context;
        int kvHeads = job->KvHeads, dh = job->HeadDim, bs = job->BlockSize;
        int t = item / kvHeads, kvh = item % kvHeads;
        int group = job->Heads / kvHeads;
        int rowElements = kvHeads * dh;
        int eb = TL.ElementBytes;
        int rowBytes = rowElements * eb;
        int count = job->Positions[t] + 1;
        int blocks = (count + bs - 1) / bs;
        int stride = (int)RoundUp(count);
        int* table = job->Tables + (long)job->Sequence[t] * job->MaxBlocks;
        long headOffset = ((long)t * job->Heads + (long)kvh * group) * dh;   // first of the group's heads in [T, H·Dh]
        float* q = job->Q + headOffset;                                      // [G, Dh]
        float* scores = job->Scratch + worker * job->ScratchFloats;           // [G, stride]
        float* acc = scores + (long)group * stride;                           // [G, Dh]
        float* inverse = acc + (long)group * dh;                              // [G]
        float* wide = scores + RoundUp((long)group * (stride + dh + 1));      // [BlockSize, Dh] when TL converts
        float* qScaled = wide + RoundUp((long)bs * dh);                       // [G, Dh] when TL converts
        float scale = job->Scale;

        // An f16 block is widened the cheap way (HalfVector.WidenScaled: 2^-112 times each value) and the 2^112 moves to
        // the other factor: q here, the softmax weight in pass 3. The products then have the same real values as with
        // the exact widening, so every result is bit-identical. That needs 2^112·q finite and exact: every |q| < 2^16
        // (and no NaN), checked per item; a block holding ∞ or NaN is widened exactly, with the unscaled q and weights.
        bool scaled = typeof(TL) == typeof(F16Row) && ScaleFits(q, group * dh);
        bool inPlace = scaled && group <= InPlaceGroup;
        if (scaled)
            VectorDriver.Map<Scaled>(q, q, qScaled, group * dh, HalfVector.Unscale);

        // (1) Scores, block by block: the block's K slice is read from memory by the first head, from L1 after.
        // Blocks are scattered, so the hardware prefetcher cannot run ahead across them: ask for the next block's K
        // slice and this block's V slice (used in pass 3) while this block's dot products run.
        for (int b = 0; b < blocks; b++)
        {
            int n = Math.Min(bs, count - b * bs);
            long byte0 = ((job->LayerRow0 + (long)table[b] * bs) * rowElements + (long)kvh * dh) * eb;
            byte* kRows = job->K + byte0;
            if (b + 1 < blocks)
            {
                long next0 = ((job->LayerRow0 + (long)table[b + 1] * bs) * rowElements + (long)kvh * dh) * eb;
                Prefetch(job->K + next0, rowBytes, Math.Min(bs, count - (b + 1) * bs), dh * eb);
            }
            Prefetch(job->V + byte0, rowBytes, n, dh * eb);
            if (inPlace && !HalfVector.HasSpecial(kRows, rowBytes, n, dh))
            {
                for (int g = 0; g < group; g++)
                    Scores<F16ScaledRow>(qScaled + (long)g * dh, kRows, rowBytes, n, dh, scale, scores + (long)g * stride + (long)b * bs);
                continue;
            }
            if (TL.Converts)
            {
                float* qb = q;
                if (scaled && HalfVector.WidenScaled(kRows, rowBytes, n, dh, wide))
                    qb = qScaled;
                else
                    Widen<TL>(kRows, rowBytes, n, dh, wide);
                for (int g = 0; g < group; g++)
                    Scores<F32Row>(qb + (long)g * dh, (byte*)wide, dh * sizeof(float), n, dh, scale, scores + (long)g * stride + (long)b * bs);
                continue;
            }
            for (int g = 0; g < group; g++)
                Scores<TL>(q + (long)g * dh, kRows, rowBytes, n, dh, scale, scores + (long)g * stride + (long)b * bs);
        }

        // (2) Softmax weights per head; the padding lanes get −inf so they take part as exp(−inf) = 0.
        for (int g = 0; g < group; g++)
        {
            float* row = scores + (long)g * stride;
            for (int p = count; p < stride; p++)
                row[p] = float.NegativeInfinity;
            inverse[g] = 1f / ExpInPlace(row, stride, VectorDriver.Reduce(new Largest(row), stride));
        }

        // (3) Weighted sum of V rows, block by block as in (1).
        new Span<float>(acc, group * dh).Clear();
        for (int b = 0; b < blocks; b++)
        {
            int n = Math.Min(bs, count - b * bs);
            byte* vRows = job->V + ((job->LayerRow0 + (long)table[b] * bs) * rowElements + (long)kvh * dh) * eb;
            if (inPlace && !HalfVector.HasSpecial(vRows, rowBytes, n, dh))
            {
                for (int g = 0; g < group; g++)
                    Accumulate<F16ScaledRow>(scores + (long)g * stride + (long)b * bs, vRows, rowBytes, n, dh, acc + (long)g * dh, HalfVector.Unscale);
                continue;
            }
            if (TL.Converts)
            {
                float factor = 1f;
                if (scaled && HalfVector.WidenScaled(vRows, rowBytes, n, dh, wide))
                    factor = HalfVector.Unscale;
                else
                    Widen<TL>(vRows, rowBytes, n, dh, wide);
                for (int g = 0; g < group; g++)
                    Accumulate<F32Row>(scores + (long)g * stride + (long)b * bs, (byte*)wide, dh * sizeof(float), n, dh, acc + (long)g * dh, factor);
                continue;
            }
            for (int g = 0; g < group; g++)
                Accumulate<TL>(scores + (long)g * stride + (long)b * bs, vRows, rowBytes, n, dh, acc + (long)g * dh, 1f);
        }
        float* o = job->Output + headOffset;
        for (int g = 0; g < group; g++)
            VectorDriver.Map<Scaled>(acc + (long)g * dh, acc + (long)g * dh, o + (long)g * dh, dh, inverse[g]);
    }

    /// <summary>True when every x[i], i in [0, n), has |x| &lt; 2^16 (so 2^112·x is finite and exact; false for NaN).</summary>
    private static bool ScaleFits(float* x, int n)
    {
        uint largest = 0;
        for (int i = 0; i < n; i++)
            largest = Math.Max(largest, BitConverter.SingleToUInt32Bits(x[i]) & 0x7FFFFFFFu);
        return largest < 0x47800000u; // bits of 2^16
    }

    /// <summary>The n rows' slices of dh elements (rows + j·rowStride bytes) widened to f32 rows of dh floats at <paramref name="wide"/> (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Widen<TL>(byte* rows, int rowStride, int n, int dh, float* wide) where TL : struct, IFloatRow
    {
        for (int j = 0; j < n; j++)
            FloatRow.Convert<TL>(rows + (long)j * rowStride, wide + (long)j * dh, dh);
    }

    /// <summary>Asks for the n rows' slices of <paramref name="bytes"/> bytes to be brought into the cache (a hint; no-op without SSE).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* rows, int rowStride, int n, int bytes)
    {
        if (!Sse.IsSupported)
            return;
        for (int j = 0; j < n; j++)
        {
            byte* r = rows + (long)j * rowStride;
            for (int i = 0; i < bytes; i += 64)
                Sse.Prefetch0(r + i);
            Sse.Prefetch0(r + bytes - 1);
        }
    }

    /// <summary>scores[j] = scale · (q · k row j) for the n rows k + j·rowStride bytes, j in [0, n); q and rows of dh elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores<TL>(float* q, byte* k, int rowStride, int n, int dh, float scale, float* scores) where TL : struct, IFloatRow
    {
        int j = 0;
        for (; j <= n - Unroll; j += Unroll)
        {
            var (s0, s1, s2, s3) = VectorDriver.Sum4(new FloatDot.Rows4<TL>(q, k + (long)j * rowStride, rowStride), dh, Accumulators.One);
            scores[j] = s0 * scale;
            scores[j + 1] = s1 * scale;
            scores[j + 2] = s2 * scale;
            scores[j + 3] = s3 * scale;
        }
        for (; j < n; j++)
            scores[j] = scale * VectorDriver.Reduce(new FloatDot.Row<TL>(q, k + (long)j * rowStride), dh);
    }

    /// <summary>row[i] = exp(row[i] − max) for i in [0, n), n a multiple of <see cref="Pad"/>; returns Σ row[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float ExpInPlace(float* row, int n, float max) => VectorDriver.MapSum<ExpMinus>(row, row, row, n, max);

    /// <summary>acc += Σ_j (factor·e[j]) · (v row j), rows v + j·rowStride bytes of dh elements, j in [0, n), in order of j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Accumulate<TL>(float* e, byte* v, int rowStride, int n, int dh, float* acc, float factor) where TL : struct, IFloatRow
    {
        int j = 0;
        for (; j <= n - Unroll; j += Unroll)
            VectorDriver.ForEach(new WeightedRows4<TL>(e + j, factor, v + (long)j * rowStride, rowStride, acc), dh);
        for (; j < n; j++)
            VectorDriver.ForEach(new WeightedRow<TL>(factor * e[j], v + (long)j * rowStride, acc), dh);
    }

    /// <summary>The largest element by IEEE maximum (NaN if any is NaN).</summary>
    private readonly struct Largest(float* x) : IMaxOperator
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Accumulate<TW, TV>(ref TV acc, nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
            => acc = TW.Max(acc, TW.Load(x + i));
    }

    /// <summary>e^(s − max), the unnormalized softmax weight of a score s.</summary>
    private readonly struct ExpMinus : IMapOperator
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Invoke<TW, TV>(TV s, TV unused, TV max) where TW : struct, IFloatVector<TV> where TV : unmanaged
            => TW.Exp(TW.Subtract(s, max));
    }

    /// <summary>acc += e·v (one FMA per vector) for one row v.</summary>
    private readonly struct WeightedRow<TL>(float e, byte* v, float* acc) : IForEachOperator where TL : struct, IFloatRow
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Apply<TW, TV>(nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
            => TW.Store(TW.MultiplyAdd(TW.Create(e), TW.LoadRow<TL>(v, i), TW.Load(acc + i)), acc + i);
    }

    /// <summary>a · p.</summary>
    private readonly struct Scaled : IMapOperator
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Invoke<TW, TV>(TV a, TV unused, TV p) where TW : struct, IFloatVector<TV> where TV : unmanaged
            => TW.Multiply(a, p);
    }

    /// <summary>
    /// acc += e0·v0 + e1·v1 + e2·v2 + e3·v3 (added in that order, each e times <paramref name="factor"/>) for the four
    /// rows v + r·rowStride: acc is loaded and stored once per vector for the four positions.
    /// </summary>
    private readonly struct WeightedRows4<TL>(float* e, float factor, byte* v, int rowStride, float* acc) : IForEachOperator where TL : struct, IFloatRow
    {
        private readonly float _e0 = factor * e[0], _e1 = factor * e[1], _e2 = factor * e[2], _e3 = factor * e[3];
        private readonly byte* _v1 = v + rowStride, _v2 = v + 2L * rowStride, _v3 = v + 3L * rowStride;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Apply<TW, TV>(nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
        {
            TV a = TW.MultiplyAdd(TW.Create(_e0), TW.LoadRow<TL>(v, i), TW.Load(acc + i));
            a = TW.MultiplyAdd(TW.Create(_e1), TW.LoadRow<TL>(_v1, i), a);
            a = TW.MultiplyAdd(TW.Create(_e2), TW.LoadRow<TL>(_v2, i), a);
            TW.Store(TW.MultiplyAdd(TW.Create(_e3), TW.LoadRow<TL>(_v3, i), a), acc + i);
        }
    }
}
