using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// Dot products of an f32 x row with unquantized weight rows. Arithmetic of one dot, fixed per tier: two vector
/// accumulators (even/odd vectors, so FMA latency is not the limit), one more vector into the first, the sum of
/// both, then a scalar tail. <see cref="Dot4"/> runs four such dots side by side sharing each x load and gives
/// bit-identical results to four <see cref="Dot1"/> calls, so variant and tiling never change a value.
/// </summary>
internal static unsafe class FloatDot
{
    /// <summary>Σ x[k]·w[k] for k in [0, K).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot1<TL>(float* x, byte* w, int k) where TL : struct, IFloatRow
    {
        int i = 0;
        float sum;
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> a0 = Vector512<float>.Zero, a1 = Vector512<float>.Zero;
            for (; i <= k - 32; i += 32)
            {
                a0 = Vector512.MultiplyAddEstimate(Vector512.Load(x + i), TL.Load512(w, i), a0);
                a1 = Vector512.MultiplyAddEstimate(Vector512.Load(x + i + 16), TL.Load512(w, i + 16), a1);
            }
            if (i <= k - 16)
            {
                a0 = Vector512.MultiplyAddEstimate(Vector512.Load(x + i), TL.Load512(w, i), a0);
                i += 16;
            }
            sum = Vector512.Sum(a0 + a1);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> a0 = Vector256<float>.Zero, a1 = Vector256<float>.Zero;
            for (; i <= k - 16; i += 16)
            {
                a0 = Vector256.MultiplyAddEstimate(Vector256.Load(x + i), TL.Load256(w, i), a0);
                a1 = Vector256.MultiplyAddEstimate(Vector256.Load(x + i + 8), TL.Load256(w, i + 8), a1);
            }
            if (i <= k - 8)
            {
                a0 = Vector256.MultiplyAddEstimate(Vector256.Load(x + i), TL.Load256(w, i), a0);
                i += 8;
            }
            sum = Vector256.Sum(a0 + a1);
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> a0 = Vector128<float>.Zero, a1 = Vector128<float>.Zero;
            for (; i <= k - 8; i += 8)
            {
                a0 = Vector128.MultiplyAddEstimate(Vector128.Load(x + i), TL.Load128(w, i), a0);
                a1 = Vector128.MultiplyAddEstimate(Vector128.Load(x + i + 4), TL.Load128(w, i + 4), a1);
            }
            if (i <= k - 4)
            {
                a0 = Vector128.MultiplyAddEstimate(Vector128.Load(x + i), TL.Load128(w, i), a0);
                i += 4;
            }
            sum = Vector128.Sum(a0 + a1);
        }
        else
        {
            sum = 0f;
        }
        for (; i < k; i++)
            sum += x[i] * TL.Load(w, i);
        return sum;
    }

    /// <summary>y[r] = Dot1(x, w + r·rowBytes) for r in 0..3, sharing each x load across the four rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dot4<TL>(float* x, byte* w, long rowBytes, int k, float* y) where TL : struct, IFloatRow
    {
        byte* w0 = w, w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes;
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            int i = 0;
            for (; i <= k - 32; i += 32)
            {
                Vector512<float> xa = Vector512.Load(x + i), xb = Vector512.Load(x + i + 16);
                a0 = Vector512.MultiplyAddEstimate(xa, TL.Load512(w0, i), a0);
                b0 = Vector512.MultiplyAddEstimate(xb, TL.Load512(w0, i + 16), b0);
                a1 = Vector512.MultiplyAddEstimate(xa, TL.Load512(w1, i), a1);
                b1 = Vector512.MultiplyAddEstimate(xb, TL.Load512(w1, i + 16), b1);
                a2 = Vector512.MultiplyAddEstimate(xa, TL.Load512(w2, i), a2);
                b2 = Vector512.MultiplyAddEstimate(xb, TL.Load512(w2, i + 16), b2);
                a3 = Vector512.MultiplyAddEstimate(xa, TL.Load512(w3, i), a3);
                b3 = Vector512.MultiplyAddEstimate(xb, TL.Load512(w3, i + 16), b3);
            }
            if (i <= k - 16)
            {
                Vector512<float> xa = Vector512.Load(x + i);
                a0 = Vector512.MultiplyAddEstimate(xa, TL.Load512(w0, i), a0);
                a1 = Vector512.MultiplyAddEstimate(xa, TL.Load512(w1, i), a1);
                a2 = Vector512.MultiplyAddEstimate(xa, TL.Load512(w2, i), a2);
                a3 = Vector512.MultiplyAddEstimate(xa, TL.Load512(w3, i), a3);
                i += 16;
            }
            Finish4<TL>(x, w0, w1, w2, w3, i, k, Vector512.Sum(a0 + b0), Vector512.Sum(a1 + b1), Vector512.Sum(a2 + b2), Vector512.Sum(a3 + b3), y);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            int i = 0;
            for (; i <= k - 16; i += 16)
            {
                Vector256<float> xa = Vector256.Load(x + i), xb = Vector256.Load(x + i + 8);
                a0 = Vector256.MultiplyAddEstimate(xa, TL.Load256(w0, i), a0);
                b0 = Vector256.MultiplyAddEstimate(xb, TL.Load256(w0, i + 8), b0);
                a1 = Vector256.MultiplyAddEstimate(xa, TL.Load256(w1, i), a1);
                b1 = Vector256.MultiplyAddEstimate(xb, TL.Load256(w1, i + 8), b1);
                a2 = Vector256.MultiplyAddEstimate(xa, TL.Load256(w2, i), a2);
                b2 = Vector256.MultiplyAddEstimate(xb, TL.Load256(w2, i + 8), b2);
                a3 = Vector256.MultiplyAddEstimate(xa, TL.Load256(w3, i), a3);
                b3 = Vector256.MultiplyAddEstimate(xb, TL.Load256(w3, i + 8), b3);
            }
            if (i <= k - 8)
            {
                Vector256<float> xa = Vector256.Load(x + i);
                a0 = Vector256.MultiplyAddEstimate(xa, TL.Load256(w0, i), a0);
                a1 = Vector256.MultiplyAddEstimate(xa, TL.Load256(w1, i), a1);
                a2 = Vector256.MultiplyAddEstimate(xa, TL.Load256(w2, i), a2);
                a3 = Vector256.MultiplyAddEstimate(xa, TL.Load256(w3, i), a3);
                i += 8;
            }
            Finish4<TL>(x, w0, w1, w2, w3, i, k, Vector256.Sum(a0 + b0), Vector256.Sum(a1 + b1), Vector256.Sum(a2 + b2), Vector256.Sum(a3 + b3), y);
        }
        else
        {
            // Narrow tiers have too few registers for eight accumulators; four single dots are the same arithmetic.
            y[0] = Dot1<TL>(x, w0, k);
            y[1] = Dot1<TL>(x, w1, k);
            y[2] = Dot1<TL>(x, w2, k);
            y[3] = Dot1<TL>(x, w3, k);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish4<TL>(float* x, byte* w0, byte* w1, byte* w2, byte* w3, int i, int k,
        float s0, float s1, float s2, float s3, float* y) where TL : struct, IFloatRow
    {
        for (; i < k; i++)
        {
            float xi = x[i];
            s0 += xi * TL.Load(w0, i);
            s1 += xi * TL.Load(w1, i);
            s2 += xi * TL.Load(w2, i);
            s3 += xi * TL.Load(w3, i);
        }
        y[0] = s0;
        y[1] = s1;
        y[2] = s2;
        y[3] = s3;
    }
}
