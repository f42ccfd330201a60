using System.Runtime.CompilerServices;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// Dot products of an f32 x row with unquantized weight rows (TL reads one weight type as floats). Arithmetic of one
/// dot, fixed per tier: two vector accumulators (even/odd vectors, so FMA latency is not the limit), one more vector
/// into the first, the sum of both, then a scalar tail (<see cref="VectorDriver.Reduce"/> with
/// <see cref="Accumulators.Two"/>). <see cref="Dot4"/> runs four such dots side by side sharing each x load and gives
/// bit-identical results to four <see cref="Dot1"/> calls, so variant and tiling never change a value.
/// Dot1, Dot4 and <see cref="FloatTile.Run2x2"/> are each compiled once, optimized, as their own method and called
/// (a few ns against 20 ns and up for a K = 288 dot): inlined three and four at a time into the MatMul driver's row
/// loop, their layers of small generic methods ran the JIT out of inlining budget halfway (constructors left as calls,
/// operator structs on the stack) and the tile variant spilled its accumulators, 1.2–1.8× slower at T = 8, K = 288.
/// </summary>
internal static unsafe class FloatDot
{
    /// <summary>Σ x[k]·w[k] for k in [0, K).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static float Dot1<TL>(float* x, byte* w, int k) where TL : struct, IFloatRow
        => VectorDriver.Reduce(new Row<TL>(x, w), k, Accumulators.Two);

    /// <summary>y[r] = Dot1(x, w + r·rowBytes) for r in 0..3, sharing each x load across the four rows.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static void Dot4<TL>(float* x, byte* w, long rowBytes, int k, float* y) where TL : struct, IFloatRow
        => (y[0], y[1], y[2], y[3]) = VectorDriver.Sum4(new Rows4<TL>(x, w, rowBytes), k, Accumulators.Two);

    /// <summary>x · w: the sum of x[i]·w[i].</summary>
    public readonly struct Row<TL>(float* x, byte* w) : IReduceOperator where TL : struct, IFloatRow
    {
        /// <inheritdoc/>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Accumulate<TW, TV>(ref TV acc, nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
            => acc = TW.MultiplyAdd(TW.Load(x + i), TW.LoadRow<TL>(w, i), acc);
    }

    /// <summary>x · w0 .. x · w3 for the four rows w + r·rowBytes: each x vector loaded once for the four.</summary>
    public readonly struct Rows4<TL>(float* x, byte* w, long rowBytes) : ISum4Operator where TL : struct, IFloatRow
    {
        private readonly byte* _w1 = w + rowBytes, _w2 = w + 2 * rowBytes, _w3 = w + 3 * rowBytes;

        /// <inheritdoc/>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Accumulate<TW, TV>(ref TV s0, ref TV s1, ref TV s2, ref TV s3, nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
        {
            TV xv = TW.Load(x + i);
            s0 = TW.MultiplyAdd(xv, TW.LoadRow<TL>(w, i), s0);
            s1 = TW.MultiplyAdd(xv, TW.LoadRow<TL>(_w1, i), s1);
            s2 = TW.MultiplyAdd(xv, TW.LoadRow<TL>(_w2, i), s2);
            s3 = TW.MultiplyAdd(xv, TW.LoadRow<TL>(_w3, i), s3);
        }
    }
}
