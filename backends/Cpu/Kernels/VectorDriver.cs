using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>How many vector accumulators a reduction keeps. Part of its arithmetic (the order of the sum), so the caller picks it.</summary>
internal enum Accumulators
{
    /// <summary>One: each vector added into the same accumulator.</summary>
    One = 1,
    /// <summary>Two, over alternate vectors (so FMA latency is not the limit); one leftover vector goes into the first; joined at the end.</summary>
    Two = 2,
}

/// <summary>
/// The loop machinery of the element-wise and row-reduction kernels (Add, SwiGlu, RmsNorm, Argmax, the float dot,
/// the attention helpers), which hold only their math as operator structs (<see cref="IMapOperator"/>,
/// <see cref="IReduceOperator"/>, <see cref="ISum4Operator"/>, <see cref="IForEachOperator"/>). Here, once: the
/// width (<see cref="Simd.Tier"/>'s vector first, then <see cref="F32x1"/> for the elements after the last full
/// vector — or for all of them at the scalar tier), the unrolling into one or two accumulators, the tail, and the
/// split of flat arrays over the worker pool. A row's arithmetic depends only on its own length and the tier, never on
/// other rows, so kernels built on this stay batch-invariant.
/// The entry points are AggressiveOptimization as well as AggressiveInlining: a caller still in unoptimized Tier-0
/// code calls an optimized loop instead of running it at Tier 0, where every width member (a load, an add) is a
/// function call until tiering catches up (SwiGlu at T = 64, F = 8192 took 30–80 ms instead of 0.4 ms through a whole
/// quarter-second benchmark case); an optimized caller inlines them. A kernel helper that calls them in a loop of its
/// own (attention's per-position passes) is AggressiveOptimization too, or that loop runs at Tier 0 for a while
/// (attention 1.8× slower through a quarter-second case); the outer row and item functions are left to tiering,
/// whose profile they gain from (attention 2–9 % faster than compiled at once).
/// </summary>
internal static unsafe class VectorDriver
{
    /// <summary>o[i] = TOp.Invoke(a[i], b[i], p) for i in [0, n). o may be a or b (each vector is read before it is written).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static void Map<TOp>(float* a, float* b, float* o, int n, float p = 0f) where TOp : struct, IMapOperator
    {
        var loop = new MapLoop<TOp>(a, b, o, n, p);
        Run(ref loop);
    }

    /// <summary>
    /// <see cref="Map{TOp}"/> that also returns Σ o[i], in the same pass: one vector accumulator, its lanes summed,
    /// then the scalar end added in order. The elements after the last full vector always go through F32x1
    /// (<see cref="IMapOperator.PadTail"/> would add the padding lanes to the sum).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static float MapSum<TOp>(float* a, float* b, float* o, int n, float p = 0f) where TOp : struct, IMapOperator
    {
        var loop = new MapSumLoop<TOp>(a, b, o, n, p);
        Run(ref loop);
        return loop.Total;
    }

    /// <summary>Elements per work item of <see cref="MapParallel{TOp}"/>: 64 KiB of each array, a multiple of every vector width.</summary>
    public const int MapChunk = 16 * 1024;

    /// <summary>
    /// <see cref="Map{TOp}"/> over a flat array of <paramref name="count"/> elements, in work items of
    /// <see cref="MapChunk"/> elements spread over the pool's workers (so only the array's end has a partial vector).
    /// </summary>
    public static void MapParallel<TOp>(WorkerPool pool, float* a, float* b, float* o, long count) where TOp : struct, IMapOperator
    {
        var job = new MapJob { A = a, B = b, Output = o, Count = count };
        pool.Run(&MapItem<TOp>, &job, (int)((count + MapChunk - 1) / MapChunk), count);
    }

    /// <summary>The reduction of elements [0, n) by <paramref name="op"/> (see <see cref="IReduceOperator"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static float Reduce<TOp>(in TOp op, int n, Accumulators accumulators = Accumulators.One) where TOp : struct, IReduceOperator
    {
        var loop = new ReduceLoop<TOp>(op, n, accumulators == Accumulators.Two);
        Run(ref loop);
        return loop.Total;
    }

    /// <summary>The four sums of <paramref name="op"/> over elements [0, n) (see <see cref="ISum4Operator"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static (float S0, float S1, float S2, float S3) Sum4<TOp>(in TOp op, int n, Accumulators accumulators) where TOp : struct, ISum4Operator
    {
        var loop = new Sum4Loop<TOp>(op, n, accumulators == Accumulators.Two);
        Run(ref loop);
        return (loop.S0, loop.S1, loop.S2, loop.S3);
    }

    /// <summary>Runs <paramref name="op"/> over elements [0, n), vectors first, the rest at F32x1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static void ForEach<TOp>(in TOp op, int n) where TOp : struct, IForEachOperator
    {
        var loop = new ForEachLoop<TOp>(op, n);
        Run(ref loop);
    }

    /// <summary>
    /// The one place the tier picks a width: the loop runs at the tier's vector width from element 0 as far as whole
    /// vectors go, then at F32x1 to the end. <see cref="Simd.Tier"/> is a static readonly value, so the JIT keeps only
    /// the branch taken.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Run<TLoop>(ref TLoop loop) where TLoop : struct, ILoop
    {
        nint i = 0;
        if (Simd.Tier == SimdTier.V512) loop.Run<F32x16, Vector512<float>>(ref i);
        else if (Simd.Tier == SimdTier.V256) loop.Run<F32x8, Vector256<float>>(ref i);
        else if (Simd.Tier == SimdTier.V128) loop.Run<F32x4, Vector128<float>>(ref i);
        loop.Run<F32x1, float>(ref i);
    }

    /// <summary>A loop written once for every width.</summary>
    private interface ILoop
    {
        /// <summary>
        /// Processes whole vectors of TW from element i on, and leaves i after the last one processed. Indices are nint
        /// so that i + TW.Count folds into the address (an int index is sign-extended again for every load).
        /// </summary>
        void Run<TW, TV>(ref nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged;
    }

    private readonly struct MapLoop<TOp>(float* a, float* b, float* o, int n, float p) : ILoop where TOp : struct, IMapOperator
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run<TW, TV>(ref nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
        {
            TV pv = TW.Create(p);
            for (; i <= n - TW.Count; i += TW.Count)
                TW.Store(TOp.Invoke<TW, TV>(TW.Load(a + i), TW.Load(b + i), pv), o + i);
            if (TOp.PadTail && TW.Count > 1 && i < n)
            {
                MapPadded<TOp, TW, TV>(a + i, b + i, o + i, (int)(n - i), p);
                i = n;
            }
        }
    }

    private struct MapSumLoop<TOp>(float* a, float* b, float* o, int n, float p) : ILoop where TOp : struct, IMapOperator
    {
        public float Total;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run<TW, TV>(ref nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
        {
            // As ReduceLoop with one accumulator: F32x1 continues the vector part's total element by element.
            TV pv = TW.Create(p), sum = TW.Create(TW.Count == 1 ? Total : 0f);
            for (; i <= n - TW.Count; i += TW.Count)
            {
                TV v = TOp.Invoke<TW, TV>(TW.Load(a + i), TW.Load(b + i), pv);
                TW.Store(v, o + i);
                sum = TW.Add(sum, v);
            }
            Total = TW.Sum(sum);
        }
    }

    /// <summary>The last <paramref name="rest"/> (&lt; TW.Count) elements through one vector on zero-padded copies.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void MapPadded<TOp, TW, TV>(float* a, float* b, float* o, int rest, float p)
        where TOp : struct, IMapOperator where TW : struct, IFloatVector<TV> where TV : unmanaged
    {
        float* pa = stackalloc float[TW.Count];
        float* pb = stackalloc float[TW.Count];
        new Span<float>(pa, TW.Count).Clear();
        new Span<float>(pb, TW.Count).Clear();
        for (int j = 0; j < rest; j++)
        {
            pa[j] = a[j];
            pb[j] = b[j];
        }
        TW.Store(TOp.Invoke<TW, TV>(TW.Load(pa), TW.Load(pb), TW.Create(p)), pa);
        for (int j = 0; j < rest; j++)
            o[j] = pa[j];
    }

    private struct ReduceLoop<TOp>(TOp op, int n, bool two) : ILoop where TOp : struct, IReduceOperator
    {
        /// <summary>The value so far: the identity, then the vector part's folded value, then the final one.</summary>
        public float Total = TOp.Identity;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run<TW, TV>(ref nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
        {
            // Vector widths start from the identity and fold their lanes; F32x1 continues the total element by
            // element, which is exactly the scalar loop the kernels had.
            bool pairs = two && TW.Count > 1;
            TOp o = op;   // a local copy: the JIT keeps its pointers in registers (the field stayed on the stack)
            TV a0 = TW.Create(TW.Count == 1 ? Total : TOp.Identity), a1 = TW.Create(TOp.Identity);
            if (pairs)
            {
                for (; i <= n - 2 * TW.Count; i += 2 * TW.Count)
                {
                    o.Accumulate<TW, TV>(ref a0, i);
                    o.Accumulate<TW, TV>(ref a1, i + TW.Count);
                }
            }
            for (; i <= n - TW.Count; i += TW.Count)
                o.Accumulate<TW, TV>(ref a0, i);
            Total = TOp.Fold<TW, TV>(pairs ? TOp.Combine<TW, TV>(a0, a1) : a0);
        }
    }

    private struct Sum4Loop<TOp>(TOp op, int n, bool two) : ILoop where TOp : struct, ISum4Operator
    {
        public float S0, S1, S2, S3;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run<TW, TV>(ref nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
        {
            // As ReduceLoop, four times: with two accumulators, a0..a3 take the even vectors and b0..b3 the odd ones.
            bool pairs = two && TW.Count > 1;
            bool scalar = TW.Count == 1;
            TOp o = op;   // as in ReduceLoop
            TV a0 = TW.Create(scalar ? S0 : 0f), a1 = TW.Create(scalar ? S1 : 0f), a2 = TW.Create(scalar ? S2 : 0f), a3 = TW.Create(scalar ? S3 : 0f);
            TV b0 = TW.Create(0f), b1 = b0, b2 = b0, b3 = b0;
            if (pairs)
            {
                for (; i <= n - 2 * TW.Count; i += 2 * TW.Count)
                {
                    o.Accumulate<TW, TV>(ref a0, ref a1, ref a2, ref a3, i);
                    o.Accumulate<TW, TV>(ref b0, ref b1, ref b2, ref b3, i + TW.Count);
                }
            }
            for (; i <= n - TW.Count; i += TW.Count)
                o.Accumulate<TW, TV>(ref a0, ref a1, ref a2, ref a3, i);
            if (pairs)
            {
                a0 = TW.Add(a0, b0);
                a1 = TW.Add(a1, b1);
                a2 = TW.Add(a2, b2);
                a3 = TW.Add(a3, b3);
            }
            S0 = TW.Sum(a0);
            S1 = TW.Sum(a1);
            S2 = TW.Sum(a2);
            S3 = TW.Sum(a3);
        }
    }

    private struct ForEachLoop<TOp>(TOp op, int n) : ILoop where TOp : struct, IForEachOperator
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run<TW, TV>(ref nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
        {
            TOp o = op;   // as in ReduceLoop
            for (; i <= n - TW.Count; i += TW.Count)
                o.Apply<TW, TV>(i);
        }
    }

    private struct MapJob
    {
        public float* A, B, Output;   // [Count] each
        public long Count;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MapItem<TOp>(void* context, int item, int worker) where TOp : struct, IMapOperator
    {
        var job = (MapJob*)context;
        long start = (long)item * MapChunk;
        int n = (int)Math.Min(MapChunk, job->Count - start);
        Map<TOp>(job->A + start, job->B + start, job->Output + start, n);
    }
}
