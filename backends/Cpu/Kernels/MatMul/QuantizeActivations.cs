using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// Quantizes f32 activation rows to q8 blocks of 32 once per MatMul, so the Q8_0/Q4_0 kernels can use integer
/// dot products (llama.cpp's vec_dot_q8_0_q8_0 idea). Layout (ours, not GGUF's): quants contiguous per row
/// (xq [T, K] int8, vector loads need no gathering) and scales apart (xd [T, K/32] f32, kept at full f32 precision
/// where llama.cpp rounds them to f16). Per block: d = amax / 127, q = round-to-even(x / d) in [-127, 127].
/// A row's result depends only on that row, never on T.
/// </summary>
internal static unsafe class QuantizeActivations
{
    /// <summary>Quantizes one row of K (a multiple of 32) floats into xq[K] and xd[K/32].</summary>
    public static void Row(float* x, int k, sbyte* xq, float* xd)
    {
        int blocks = k / 32;
        for (int b = 0; b < blocks; b++)
            Block(x + b * 32, xq + b * 32, xd + b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block(float* x, sbyte* q, float* d)
    {
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> v0 = Vector512.Load(x), v1 = Vector512.Load(x + 16);
            Vector512<float> m = Vector512.Max(Vector512.Abs(v0), Vector512.Abs(v1));
            float amax = HorizontalMax(Vector256.Max(m.GetLower(), m.GetUpper()));
            float scale = amax / 127f;
            float inv = scale != 0f ? 1f / scale : 0f;
            *d = scale;
            Vector512<float> iv = Vector512.Create(inv);
            Vector512<int> i0 = Vector512.ConvertToInt32(Vector512.Round(v0 * iv)), i1 = Vector512.ConvertToInt32(Vector512.Round(v1 * iv));
            Vector512<short> s = Vector512.Narrow(i0, i1);
            Vector512.Narrow(s, s).GetLower().Store(q);
            return;
        }
        if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> v0 = Vector256.Load(x), v1 = Vector256.Load(x + 8), v2 = Vector256.Load(x + 16), v3 = Vector256.Load(x + 24);
            // Max (not MaxNative) propagates NaN, so a NaN input makes d NaN and the dot product NaN, as in f32.
            Vector256<float> m = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
            float amax = HorizontalMax(m);
            float scale = amax / 127f;
            float inv = scale != 0f ? 1f / scale : 0f;
            *d = scale;
            Vector256<float> iv = Vector256.Create(inv);
            Vector256<int> i0 = Vector256.ConvertToInt32(Vector256.Round(v0 * iv)), i1 = Vector256.ConvertToInt32(Vector256.Round(v1 * iv));
            Vector256<int> i2 = Vector256.ConvertToInt32(Vector256.Round(v2 * iv)), i3 = Vector256.ConvertToInt32(Vector256.Round(v3 * iv));
            Vector256<sbyte> packed = Vector256.Narrow(Vector256.Narrow(i0, i1), Vector256.Narrow(i2, i3));
            packed.Store(q);
            return;
        }
        if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> m = Vector128<float>.Zero;
            for (int i = 0; i < 32; i += 4)
                m = Vector128.Max(m, Vector128.Abs(Vector128.Load(x + i)));
            float amax = MathF.Max(MathF.Max(m[0], m[1]), MathF.Max(m[2], m[3]));
            float scale = amax / 127f;
            float inv = scale != 0f ? 1f / scale : 0f;
            *d = scale;
            Vector128<float> iv = Vector128.Create(inv);
            for (int i = 0; i < 32; i += 16)
            {
                Vector128<int> i0 = Vector128.ConvertToInt32(Vector128.Round(Vector128.Load(x + i) * iv));
                Vector128<int> i1 = Vector128.ConvertToInt32(Vector128.Round(Vector128.Load(x + i + 4) * iv));
                Vector128<int> i2 = Vector128.ConvertToInt32(Vector128.Round(Vector128.Load(x + i + 8) * iv));
                Vector128<int> i3 = Vector128.ConvertToInt32(Vector128.Round(Vector128.Load(x + i + 12) * iv));
                Vector128.Narrow(Vector128.Narrow(i0, i1), Vector128.Narrow(i2, i3)).Store(q + i);
            }
            return;
        }
        {
            float amax = 0f;
            for (int i = 0; i < 32; i++)
                amax = MathF.Max(amax, MathF.Abs(x[i]));
            float scale = amax / 127f;
            float inv = scale != 0f ? 1f / scale : 0f;
            *d = scale;
            for (int i = 0; i < 32; i++)
                q[i] = (sbyte)(int)MathF.Round(x[i] * inv);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HorizontalMax(Vector256<float> m)
    {
        Vector128<float> h = Vector128.Max(m.GetLower(), m.GetUpper());
        return MathF.Max(MathF.Max(h[0], h[1]), MathF.Max(h[2], h[3]));
    }
}
