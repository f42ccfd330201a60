using System.Runtime.Intrinsics;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// How to read floats from a weight row of one unquantized type. Implemented by structs so the generic driver is
/// specialized per type. Every load converts exactly (f16 and bf16 values are all representable in f32), so a
/// row converted once to f32 and then read as F32 gives bit-identical products.
/// </summary>
internal unsafe interface IFloatRow
{
    /// <summary>Bytes per element.</summary>
    static abstract int ElementBytes { get; }

    /// <summary>True when loads convert (F16, BF16): the driver then converts a tile of rows once for many x rows.</summary>
    static abstract bool Converts { get; }

    /// <summary>Elements k..k+15 of the row as floats.</summary>
    static abstract Vector512<float> Load512(byte* row, int k);

    /// <summary>Elements k..k+7.</summary>
    static abstract Vector256<float> Load256(byte* row, int k);

    /// <summary>Elements k..k+3.</summary>
    static abstract Vector128<float> Load128(byte* row, int k);

    /// <summary>Element k.</summary>
    static abstract float Load(byte* row, int k);
}

/// <summary>Row helpers for <see cref="IFloatRow"/> formats.</summary>
internal static unsafe class FloatRow
{
    /// <summary>Converts k elements of a weight row to f32 (exact).</summary>
    public static void Convert<TL>(byte* src, float* dst, int k) where TL : struct, IFloatRow
    {
        int i = 0;
        if (Simd.Tier == SimdTier.V512)
        {
            for (; i <= k - 16; i += 16)
                TL.Load512(src, i).Store(dst + i);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            for (; i <= k - 8; i += 8)
                TL.Load256(src, i).Store(dst + i);
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            for (; i <= k - 4; i += 4)
                TL.Load128(src, i).Store(dst + i);
        }
        for (; i < k; i++)
            dst[i] = TL.Load(src, i);
    }
}
