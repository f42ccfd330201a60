using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// Causal paged GQA attention. Work item (t, h): query row t, head h, kv head h / (H / Hkv), keys at positions
/// 0..pos[t] of sequence seq[t], position p in cache row layerRow0 + table[seq, p / BlockSize]·BlockSize + p % BlockSize.
/// Two passes over the positions: scaled scores into scratch (tracking the max), then exp(s − max) and the weighted
/// sum of V rows, divided by Σ exp once. The work of (t, h) depends on its own inputs only.
/// </summary>
internal static unsafe class Attention
{
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
        public float* Scratch;      // per worker: ScratchFloats floats (scores[maxPos + 1], then acc[Dh])
        public long ScratchFloats;
    }

    /// <summary>Floats of per-worker scratch for contexts up to <paramref name="maxPositions"/> positions.</summary>
    public static long ScratchFloats(int maxPositions, int headDim) => ((long)maxPositions + headDim + 15) & ~15L;

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
        pool.Run(&Item, &job, t * heads, work);
    }

    private static void Item(void* context, int item, int worker)
    {
        var job = (Job*)context;
        int heads = job->Heads, dh = job->HeadDim, t = item / heads, h = item % heads;
        int kvh = h / (heads / job->KvHeads);
        int rowElements = job->KvHeads * dh;
        int count = job->Positions[t] + 1;
        int* table = job->Tables + (long)job->Sequence[t] * job->MaxBlocks;
        float* q = job->Q + ((long)t * heads + h) * dh;
        float* scores = job->Scratch + worker * job->ScratchFloats;
        float* acc = scores + ((count + 15) & ~15);
        int bs = job->BlockSize;

        float max = float.NegativeInfinity;
        for (int p = 0; p < count; p++)
        {
            long row = job->LayerRow0 + (long)table[p / bs] * bs + p % bs;
            float s = job->Scale * Dot(q, job->K + row * rowElements + kvh * dh, dh);
            scores[p] = s;
            max = MathF.Max(max, s);
        }
        new Span<float>(acc, dh).Clear();
        float sum = 0f;
        for (int p = 0; p < count; p++)
        {
            float e = MathF.Exp(scores[p] - max);
            sum += e;
            long row = job->LayerRow0 + (long)table[p / bs] * bs + p % bs;
            Axpy(e, job->V + row * rowElements + kvh * dh, acc, dh);
        }
        float inv = 1f / sum;
        float* o = job->Output + ((long)t * heads + h) * dh;
        for (int i = 0; i < dh; i++)
            o[i] = acc[i] * inv;
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
