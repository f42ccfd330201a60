using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

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
    public static void Run2x2<TL>(float* x, byte* w, long rowBytes, int k, float* y, int yStride) where TL : struct, IFloatRow
    {
        float* x0 = x, x1 = x + k;
        byte* w0 = w, w1 = w + rowBytes;
        int i = 0;
        float s00, s01, s10, s11;
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> a00 = default, b00 = default, a01 = default, b01 = default;
            Vector512<float> a10 = default, b10 = default, a11 = default, b11 = default;
            for (; i <= k - 32; i += 32)
            {
                Vector512<float> wa0 = TL.Load512(w0, i), wb0 = TL.Load512(w0, i + 16);
                Vector512<float> wa1 = TL.Load512(w1, i), wb1 = TL.Load512(w1, i + 16);
                Vector512<float> xa = Vector512.Load(x0 + i), xb = Vector512.Load(x0 + i + 16);
                a00 = Vector512.MultiplyAddEstimate(xa, wa0, a00);
                b00 = Vector512.MultiplyAddEstimate(xb, wb0, b00);
                a01 = Vector512.MultiplyAddEstimate(xa, wa1, a01);
                b01 = Vector512.MultiplyAddEstimate(xb, wb1, b01);
                xa = Vector512.Load(x1 + i);
                xb = Vector512.Load(x1 + i + 16);
                a10 = Vector512.MultiplyAddEstimate(xa, wa0, a10);
                b10 = Vector512.MultiplyAddEstimate(xb, wb0, b10);
                a11 = Vector512.MultiplyAddEstimate(xa, wa1, a11);
                b11 = Vector512.MultiplyAddEstimate(xb, wb1, b11);
            }
            if (i <= k - 16)
            {
                Vector512<float> wa0 = TL.Load512(w0, i), wa1 = TL.Load512(w1, i);
                Vector512<float> xa = Vector512.Load(x0 + i);
                a00 = Vector512.MultiplyAddEstimate(xa, wa0, a00);
                a01 = Vector512.MultiplyAddEstimate(xa, wa1, a01);
                xa = Vector512.Load(x1 + i);
                a10 = Vector512.MultiplyAddEstimate(xa, wa0, a10);
                a11 = Vector512.MultiplyAddEstimate(xa, wa1, a11);
                i += 16;
            }
            s00 = Vector512.Sum(a00 + b00);
            s01 = Vector512.Sum(a01 + b01);
            s10 = Vector512.Sum(a10 + b10);
            s11 = Vector512.Sum(a11 + b11);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> a00 = default, b00 = default, a01 = default, b01 = default;
            Vector256<float> a10 = default, b10 = default, a11 = default, b11 = default;
            for (; i <= k - 16; i += 16)
            {
                Vector256<float> wa0 = TL.Load256(w0, i), wb0 = TL.Load256(w0, i + 8);
                Vector256<float> wa1 = TL.Load256(w1, i), wb1 = TL.Load256(w1, i + 8);
                Vector256<float> xa = Vector256.Load(x0 + i), xb = Vector256.Load(x0 + i + 8);
                a00 = Vector256.MultiplyAddEstimate(xa, wa0, a00);
                b00 = Vector256.MultiplyAddEstimate(xb, wb0, b00);
                a01 = Vector256.MultiplyAddEstimate(xa, wa1, a01);
                b01 = Vector256.MultiplyAddEstimate(xb, wb1, b01);
                xa = Vector256.Load(x1 + i);
                xb = Vector256.Load(x1 + i + 8);
                a10 = Vector256.MultiplyAddEstimate(xa, wa0, a10);
                b10 = Vector256.MultiplyAddEstimate(xb, wb0, b10);
                a11 = Vector256.MultiplyAddEstimate(xa, wa1, a11);
                b11 = Vector256.MultiplyAddEstimate(xb, wb1, b11);
            }
            if (i <= k - 8)
            {
                Vector256<float> wa0 = TL.Load256(w0, i), wa1 = TL.Load256(w1, i);
                Vector256<float> xa = Vector256.Load(x0 + i);
                a00 = Vector256.MultiplyAddEstimate(xa, wa0, a00);
                a01 = Vector256.MultiplyAddEstimate(xa, wa1, a01);
                xa = Vector256.Load(x1 + i);
                a10 = Vector256.MultiplyAddEstimate(xa, wa0, a10);
                a11 = Vector256.MultiplyAddEstimate(xa, wa1, a11);
                i += 8;
            }
            s00 = Vector256.Sum(a00 + b00);
            s01 = Vector256.Sum(a01 + b01);
            s10 = Vector256.Sum(a10 + b10);
            s11 = Vector256.Sum(a11 + b11);
        }
        else
        {
            // Narrow tiers: the plain dots are the same arithmetic.
            y[0] = FloatDot.Dot1<TL>(x0, w0, k);
            y[1] = FloatDot.Dot1<TL>(x0, w1, k);
            y[yStride] = FloatDot.Dot1<TL>(x1, w0, k);
            y[yStride + 1] = FloatDot.Dot1<TL>(x1, w1, k);
            return;
        }
        y[0] = Tail<TL>(x0, w0, i, k, s00);
        y[1] = Tail<TL>(x0, w1, i, k, s01);
        y[yStride] = Tail<TL>(x1, w0, i, k, s10);
        y[yStride + 1] = Tail<TL>(x1, w1, i, k, s11);
    }

    /// <summary>The scalar tail of a dot, elements i..k−1 added in order as in Dot1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Tail<TL>(float* x, byte* w, int i, int k, float sum) where TL : struct, IFloatRow
    {
        for (; i < k; i++)
            sum += x[i] * TL.Load(w, i);
        return sum;
    }
}
