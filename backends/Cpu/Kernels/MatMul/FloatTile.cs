using System.Runtime.CompilerServices;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// The 2 x rows × 2 weight rows register tile of the unquantized MatMul (the tile2x2 variants): each weight vector
/// loaded serves two x rows and each x vector two weight rows, halving the loads per FMA of <see cref="FloatDot.Dot4"/>'s
/// 1 × 4 shape. Batch invariance: every (row, col) keeps exactly <see cref="FloatDot.Dot1"/>'s arithmetic (two
/// accumulators over alternate vectors, one more vector into the first, their sum, the scalar tail in order).
/// </summary>
internal static unsafe class FloatTile
{
    /// <summary>
    /// y[r·yStride + c] = Dot1(x + r·k, w + c·rowBytes, k) for r, c in 0..1. x: [2, K] f32; w: two rows of
    /// <paramref name="rowBytes"/> bytes; y: row r at y + r·yStride.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static void Run2x2<TL>(float* x, byte* w, long rowBytes, int k, float* y, int yStride) where TL : struct, IFloatRow
        => (y[0], y[1], y[yStride], y[yStride + 1]) = VectorDriver.Sum4(new Tile2x2<TL>(x, x + k, w, w + rowBytes), k, Accumulators.Two);

    /// <summary>x0 · w0, x0 · w1, x1 · w0, x1 · w1: each loaded vector serves two of the four.</summary>
    private readonly struct Tile2x2<TL>(float* x0, float* x1, byte* w0, byte* w1) : ISum4Operator where TL : struct, IFloatRow
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Accumulate<TW, TV>(ref TV s00, ref TV s01, ref TV s10, ref TV s11, nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
        {
            TV wa = TW.LoadRow<TL>(w0, i), wb = TW.LoadRow<TL>(w1, i);
            TV xv = TW.Load(x0 + i);
            s00 = TW.MultiplyAdd(xv, wa, s00);
            s01 = TW.MultiplyAdd(xv, wb, s01);
            xv = TW.Load(x1 + i);
            s10 = TW.MultiplyAdd(xv, wa, s10);
            s11 = TW.MultiplyAdd(xv, wb, s11);
        }
    }
}
