using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// Causal paged GQA attention. Work item (t, g): query row t and kv head g together with the G = H / Hkv query heads
/// that share it (heads g·G .. g·G + G − 1), over the keys at positions 0..pos[t] of sequence seq[t]; position p
/// lives in cache row layerRow0 + table[seq, p / BlockSize]·BlockSize + p % BlockSize. The block table is walked
/// block by block (rows of a block are consecutive), and each K / V slice of a block is read once for all G heads
/// (it stays in L1 while the heads take turns).
/// Three passes per item: (1) scaled scores of every position into a scratch row per head, four positions per
/// sweep of q; (2) per head, vector max, e = exp(s − max) in place and Σ e; (3) acc_h += e·V row, four positions
/// per sweep of acc, then output = acc / Σ e. The arithmetic of an item depends only on its own row's position,
/// sequence, q and the cache (never on T, the other rows or which worker runs it), so results are batch-invariant.
/// Large contexts are bound by memory bandwidth (each K and V element is read once per item); small ones by the
/// per-position dot and axpy work.
/// </summary>
internal static unsafe class Attention
{
    /// <summary>Score rows are padded to a multiple of this many floats (the widest vector, 16 lanes).</summary>
    private const int Pad = 16;

    /// <summary>Positions handled per sweep over a head's q (scores) or acc (values).</summary>
    private const int Unroll = 4;

    private struct Job
    {
        public float* Q;            // [T, H·Dh]
        public float* Output;       // [T, H·Dh]
        public float* K, V;         // cache rows of Hkv·Dh
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
    /// floats (64 bytes) so every worker's part starts aligned.
    /// </summary>
    public static long ScratchFloats(int maxPositions, int headDim, int group)
        => RoundUp((long)group * (RoundUp(maxPositions) + headDim + 1));

    private static long RoundUp(long n) => (n + Pad - 1) & ~(long)(Pad - 1);

    /// <summary>Runs the op on validated pointers (every position's block id already checked).</summary>
    public static void Run(WorkerPool pool, float* q, float* output, float* k, float* v, long layerRow0,
        int* positions, int* sequence, int* tables, int maxBlocks, int blockSize,
        int t, int heads, int kvHeads, int headDim, float scale, float* scratch, long scratchFloats, long work)
    {
        var job = new Job
        {
            Q = q, Output = output, K = k, V = v, LayerRow0 = layerRow0, Positions = positions, Sequence = sequence,
            Tables = tables, MaxBlocks = maxBlocks, BlockSize = blockSize, Heads = heads, KvHeads = kvHeads,
            HeadDim = headDim, Scale = scale, Scratch = scratch, ScratchFloats = scratchFloats,
        };
        pool.Run(&Item, &job, t * kvHeads, work);
    }

    private static void Item(void* context, int item, int worker)
    {
        var job = (Job*)context;
        int kvHeads = job->KvHeads, dh = job->HeadDim, bs = job->BlockSize;
        int t = item / kvHeads, kvh = item % kvHeads;
        int group = job->Heads / kvHeads;
        int rowElements = kvHeads * dh;
        int count = job->Positions[t] + 1;
        int blocks = (count + bs - 1) / bs;
        int stride = (int)RoundUp(count);
        int* table = job->Tables + (long)job->Sequence[t] * job->MaxBlocks;
        long headOffset = ((long)t * job->Heads + (long)kvh * group) * dh;   // first of the group's heads in [T, H·Dh]
        float* q = job->Q + headOffset;                                      // [G, Dh]
        float* scores = job->Scratch + worker * job->ScratchFloats;           // [G, stride]
        float* acc = scores + (long)group * stride;                           // [G, Dh]
        float* inverse = acc + (long)group * dh;                              // [G]
        float scale = job->Scale;

        // (1) Scores, block by block: the block's K slice is read from memory by the first head, from L1 after.
        // Blocks are scattered, so the hardware prefetcher cannot run ahead across them: ask for the next block's K
        // slice and this block's V slice (used in pass 3) while this block's dot products run.
        for (int b = 0; b < blocks; b++)
        {
            int n = Math.Min(bs, count - b * bs);
            long element0 = (job->LayerRow0 + (long)table[b] * bs) * rowElements + (long)kvh * dh;
            float* kRows = job->K + element0;
            if (b + 1 < blocks)
            {
                long next0 = (job->LayerRow0 + (long)table[b + 1] * bs) * rowElements + (long)kvh * dh;
                Prefetch(job->K + next0, rowElements, Math.Min(bs, count - (b + 1) * bs), dh);
            }
            Prefetch(job->V + element0, rowElements, n, dh);
            for (int g = 0; g < group; g++)
                Scores(q + (long)g * dh, kRows, rowElements, n, dh, scale, scores + (long)g * stride + (long)b * bs);
        }

        // (2) Softmax weights per head; the padding lanes get −inf so they take part as exp(−inf) = 0.
        for (int g = 0; g < group; g++)
        {
            float* row = scores + (long)g * stride;
            for (int p = count; p < stride; p++)
                row[p] = float.NegativeInfinity;
            inverse[g] = 1f / ExpInPlace(row, stride, Max(row, stride));
        }

        // (3) Weighted sum of V rows, block by block as in (1).
        new Span<float>(acc, group * dh).Clear();
        for (int b = 0; b < blocks; b++)
        {
            int n = Math.Min(bs, count - b * bs);
            float* vRows = job->V + (job->LayerRow0 + (long)table[b] * bs) * rowElements + (long)kvh * dh;
            for (int g = 0; g < group; g++)
                Accumulate(scores + (long)g * stride + (long)b * bs, vRows, rowElements, n, dh, acc + (long)g * dh);
        }
        float* o = job->Output + headOffset;
        for (int g = 0; g < group; g++)
        {
            float inv = inverse[g];
            for (int i = 0; i < dh; i++)
                o[(long)g * dh + i] = acc[(long)g * dh + i] * inv;
        }
    }

    /// <summary>Asks for the n rows' slices of dh floats to be brought into the cache (a hint; no-op without SSE).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(float* rows, int rowStride, int n, int dh)
    {
        if (!Sse.IsSupported)
            return;
        for (int j = 0; j < n; j++)
        {
            float* r = rows + (long)j * rowStride;
            for (int i = 0; i < dh; i += 16)
                Sse.Prefetch0(r + i);
            Sse.Prefetch0(r + dh - 1);
        }
    }

    /// <summary>scores[j] = scale · (q · k row j) for the n rows k + j·rowStride, j in [0, n); q and rows of dh floats.</summary>
    private static void Scores(float* q, float* k, int rowStride, int n, int dh, float scale, float* scores)
    {
        int j = 0;
        for (; j <= n - Unroll; j += Unroll)
        {
            float* k0 = k + (long)j * rowStride;
            Dot4(q, k0, k0 + rowStride, k0 + 2L * rowStride, k0 + 3L * rowStride, dh, scores + j);
            scores[j] *= scale;
            scores[j + 1] *= scale;
            scores[j + 2] *= scale;
            scores[j + 3] *= scale;
        }
        for (; j < n; j++)
            scores[j] = scale * Dot(q, k + (long)j * rowStride, dh);
    }

    /// <summary>The four dot products q · k0..k3 over n floats into result[0..3]; q is loaded once per vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot4(float* q, float* k0, float* k1, float* k2, float* k3, int n, float* result)
    {
        int i = 0;
        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= n - 16; i += 16)
            {
                Vector512<float> qv = Vector512.Load(q + i);
                a0 = Vector512.MultiplyAddEstimate(qv, Vector512.Load(k0 + i), a0);
                a1 = Vector512.MultiplyAddEstimate(qv, Vector512.Load(k1 + i), a1);
                a2 = Vector512.MultiplyAddEstimate(qv, Vector512.Load(k2 + i), a2);
                a3 = Vector512.MultiplyAddEstimate(qv, Vector512.Load(k3 + i), a3);
            }
            s0 = Vector512.Sum(a0); s1 = Vector512.Sum(a1); s2 = Vector512.Sum(a2); s3 = Vector512.Sum(a3);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= n - 8; i += 8)
            {
                Vector256<float> qv = Vector256.Load(q + i);
                a0 = Vector256.MultiplyAddEstimate(qv, Vector256.Load(k0 + i), a0);
                a1 = Vector256.MultiplyAddEstimate(qv, Vector256.Load(k1 + i), a1);
                a2 = Vector256.MultiplyAddEstimate(qv, Vector256.Load(k2 + i), a2);
                a3 = Vector256.MultiplyAddEstimate(qv, Vector256.Load(k3 + i), a3);
            }
            s0 = Vector256.Sum(a0); s1 = Vector256.Sum(a1); s2 = Vector256.Sum(a2); s3 = Vector256.Sum(a3);
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= n - 4; i += 4)
            {
                Vector128<float> qv = Vector128.Load(q + i);
                a0 = Vector128.MultiplyAddEstimate(qv, Vector128.Load(k0 + i), a0);
                a1 = Vector128.MultiplyAddEstimate(qv, Vector128.Load(k1 + i), a1);
                a2 = Vector128.MultiplyAddEstimate(qv, Vector128.Load(k2 + i), a2);
                a3 = Vector128.MultiplyAddEstimate(qv, Vector128.Load(k3 + i), a3);
            }
            s0 = Vector128.Sum(a0); s1 = Vector128.Sum(a1); s2 = Vector128.Sum(a2); s3 = Vector128.Sum(a3);
        }
        for (; i < n; i++)
        {
            float qs = q[i];
            s0 += qs * k0[i];
            s1 += qs * k1[i];
            s2 += qs * k2[i];
            s3 += qs * k3[i];
        }
        result[0] = s0;
        result[1] = s1;
        result[2] = s2;
        result[3] = s3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float sum = 0f;
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> acc = Vector512<float>.Zero;
            for (; i <= n - 16; i += 16)
                acc = Vector512.MultiplyAddEstimate(Vector512.Load(a + i), Vector512.Load(b + i), acc);
            sum = Vector512.Sum(acc);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
                acc = Vector256.MultiplyAddEstimate(Vector256.Load(a + i), Vector256.Load(b + i), acc);
            sum = Vector256.Sum(acc);
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> acc = Vector128<float>.Zero;
            for (; i <= n - 4; i += 4)
                acc = Vector128.MultiplyAddEstimate(Vector128.Load(a + i), Vector128.Load(b + i), acc);
            sum = Vector128.Sum(acc);
        }
        for (; i < n; i++)
            sum += a[i] * b[i];
        return sum;
    }

    /// <summary>Largest of row[0..n), n a multiple of <see cref="Pad"/>.</summary>
    private static float Max(float* row, int n)
    {
        int i = 0;
        float max = float.NegativeInfinity;
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> m = Vector512.Create(float.NegativeInfinity);
            for (; i < n; i += 16)
                m = Vector512.Max(m, Vector512.Load(row + i));
            max = MaxLanes(m.GetLower(), m.GetUpper());
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> m = Vector256.Create(float.NegativeInfinity);
            for (; i < n; i += 8)
                m = Vector256.Max(m, Vector256.Load(row + i));
            max = MaxLanes(m, m);
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> m = Vector128.Create(float.NegativeInfinity);
            for (; i < n; i += 4)
                m = Vector128.Max(m, Vector128.Load(row + i));
            max = MaxLanes(m);
        }
        for (; i < n; i++)
            max = MathF.Max(max, row[i]);
        return max;
    }

    private static float MaxLanes(Vector256<float> a, Vector256<float> b)
    {
        Vector256<float> m = Vector256.Max(a, b);
        return MaxLanes(Vector128.Max(m.GetLower(), m.GetUpper()));
    }

    private static float MaxLanes(Vector128<float> m)
        => MathF.Max(MathF.Max(m.GetElement(0), m.GetElement(1)), MathF.Max(m.GetElement(2), m.GetElement(3)));

    /// <summary>row[i] = exp(row[i] − max) for i in [0, n), n a multiple of <see cref="Pad"/>; returns Σ row[i].</summary>
    private static float ExpInPlace(float* row, int n, float max)
    {
        int i = 0;
        float sum = 0f;
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> m = Vector512.Create(max), s = default;
            for (; i < n; i += 16)
            {
                Vector512<float> e = Vector512.Exp(Vector512.Load(row + i) - m);
                e.Store(row + i);
                s += e;
            }
            sum = Vector512.Sum(s);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> m = Vector256.Create(max), s = default;
            for (; i < n; i += 8)
            {
                Vector256<float> e = Vector256.Exp(Vector256.Load(row + i) - m);
                e.Store(row + i);
                s += e;
            }
            sum = Vector256.Sum(s);
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> m = Vector128.Create(max), s = default;
            for (; i < n; i += 4)
            {
                Vector128<float> e = Vector128.Exp(Vector128.Load(row + i) - m);
                e.Store(row + i);
                s += e;
            }
            sum = Vector128.Sum(s);
        }
        for (; i < n; i++)
        {
            float e = MathF.Exp(row[i] - max);
            row[i] = e;
            sum += e;
        }
        return sum;
    }

    /// <summary>acc += Σ_j e[j] · (v row j), rows v + j·rowStride of dh floats, j in [0, n), in order of j.</summary>
    private static void Accumulate(float* e, float* v, int rowStride, int n, int dh, float* acc)
    {
        int j = 0;
        for (; j <= n - Unroll; j += Unroll)
        {
            float* v0 = v + (long)j * rowStride;
            Axpy4(e + j, v0, v0 + rowStride, v0 + 2L * rowStride, v0 + 3L * rowStride, dh, acc);
        }
        for (; j < n; j++)
            Axpy(e[j], v + (long)j * rowStride, acc, dh);
    }

    /// <summary>acc += e0·v0 + e1·v1 + e2·v2 + e3·v3 (added in that order) over n floats; acc is loaded once per vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Axpy4(float* e, float* v0, float* v1, float* v2, float* v3, int n, float* acc)
    {
        int i = 0;
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> e0 = Vector512.Create(e[0]), e1 = Vector512.Create(e[1]);
            Vector512<float> e2 = Vector512.Create(e[2]), e3 = Vector512.Create(e[3]);
            for (; i <= n - 16; i += 16)
            {
                Vector512<float> a = Vector512.MultiplyAddEstimate(e0, Vector512.Load(v0 + i), Vector512.Load(acc + i));
                a = Vector512.MultiplyAddEstimate(e1, Vector512.Load(v1 + i), a);
                a = Vector512.MultiplyAddEstimate(e2, Vector512.Load(v2 + i), a);
                Vector512.MultiplyAddEstimate(e3, Vector512.Load(v3 + i), a).Store(acc + i);
            }
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> e0 = Vector256.Create(e[0]), e1 = Vector256.Create(e[1]);
            Vector256<float> e2 = Vector256.Create(e[2]), e3 = Vector256.Create(e[3]);
            for (; i <= n - 8; i += 8)
            {
                Vector256<float> a = Vector256.MultiplyAddEstimate(e0, Vector256.Load(v0 + i), Vector256.Load(acc + i));
                a = Vector256.MultiplyAddEstimate(e1, Vector256.Load(v1 + i), a);
                a = Vector256.MultiplyAddEstimate(e2, Vector256.Load(v2 + i), a);
                Vector256.MultiplyAddEstimate(e3, Vector256.Load(v3 + i), a).Store(acc + i);
            }
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> e0 = Vector128.Create(e[0]), e1 = Vector128.Create(e[1]);
            Vector128<float> e2 = Vector128.Create(e[2]), e3 = Vector128.Create(e[3]);
            for (; i <= n - 4; i += 4)
            {
                Vector128<float> a = Vector128.MultiplyAddEstimate(e0, Vector128.Load(v0 + i), Vector128.Load(acc + i));
                a = Vector128.MultiplyAddEstimate(e1, Vector128.Load(v1 + i), a);
                a = Vector128.MultiplyAddEstimate(e2, Vector128.Load(v2 + i), a);
                Vector128.MultiplyAddEstimate(e3, Vector128.Load(v3 + i), a).Store(acc + i);
            }
        }
        for (; i < n; i++)
            acc[i] = acc[i] + e[0] * v0[i] + e[1] * v1[i] + e[2] * v2[i] + e[3] * v3[i];
    }

    /// <summary>acc += e · v over n floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Axpy(float e, float* v, float* acc, int n)
    {
        int i = 0;
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> ev = Vector512.Create(e);
            for (; i <= n - 16; i += 16)
                Vector512.MultiplyAddEstimate(ev, Vector512.Load(v + i), Vector512.Load(acc + i)).Store(acc + i);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> ev = Vector256.Create(e);
            for (; i <= n - 8; i += 8)
                Vector256.MultiplyAddEstimate(ev, Vector256.Load(v + i), Vector256.Load(acc + i)).Store(acc + i);
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> ev = Vector128.Create(e);
            for (; i <= n - 4; i += 4)
                Vector128.MultiplyAddEstimate(ev, Vector128.Load(v + i), Vector128.Load(acc + i)).Store(acc + i);
        }
        for (; i < n; i++)
            acc[i] += e * v[i];
    }
}
