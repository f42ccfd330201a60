using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// One GGUF block format of 32 weights with an f16 scale: how to read its scale and its 32 quants as int8.
/// Implemented by the format's block struct (Kernels/Formats: <c>Q8_0Block</c>, <c>Q4_0Block</c>, <c>Q5_0Block</c>) so
/// the generic MatMul driver and <see cref="QuantBlock.Decode{TB}"/> are specialized per format (no virtual calls in the
/// hot loop).
/// </summary>
internal unsafe interface IQuantBlock
{
    /// <summary>Bytes per block (34 for Q8_0, 18 for Q4_0).</summary>
    static abstract int BlockBytes { get; }

    /// <summary>The block's scale d as f32.</summary>
    static abstract float Scale(byte* block);

    /// <summary>The 32 quants as signed values (value = d · q), in element order.</summary>
    static abstract Vector256<sbyte> Quants256(byte* block);

    /// <summary>Quants of elements 0..15.</summary>
    static abstract Vector128<sbyte> QuantsLo128(byte* block);

    /// <summary>Quants of elements 16..31.</summary>
    static abstract Vector128<sbyte> QuantsHi128(byte* block);

    /// <summary>
    /// Per x block, the term <see cref="Dot256"/> needs from x alone (shared by every weight row), or zero.
    /// </summary>
    static abstract Vector256<short> XBias256(Vector256<sbyte> x);

    /// <summary>
    /// The 32 int8 products of the block's quants with x in 8 int32 lanes, lane for lane equal to
    /// Int8Dot.Dot(Quants256(block), x); <paramref name="xBias"/> = XBias256(x).
    /// </summary>
    static abstract Vector256<int> Dot256(byte* block, Vector256<sbyte> x, Vector256<short> xBias);

    /// <summary>Quant of element i (0..31), scalar.</summary>
    static abstract int Quant(byte* block, int i);
}

/// <summary>Shared code of the 32-element block formats.</summary>
internal static unsafe class QuantBlock
{
    /// <summary>Dequantizes <paramref name="blocks"/> consecutive blocks into 32·blocks floats (d · q, exact in f32): the formats' Embed row decoder.</summary>
    public static void Decode<TB>(byte* src, int blocks, float* dst) where TB : struct, IQuantBlock
    {
        for (int b = 0; b < blocks; b++, src += TB.BlockBytes, dst += 32)
        {
            float d = TB.Scale(src);
            if (Simd.Tier >= SimdTier.V256)
            {
                (Vector256<short> lo, Vector256<short> hi) = Vector256.Widen(TB.Quants256(src));
                (Vector256<int> q0, Vector256<int> q1) = Vector256.Widen(lo);
                (Vector256<int> q2, Vector256<int> q3) = Vector256.Widen(hi);
                Vector256<float> dv = Vector256.Create(d);
                (Vector256.ConvertToSingle(q0) * dv).Store(dst);
                (Vector256.ConvertToSingle(q1) * dv).Store(dst + 8);
                (Vector256.ConvertToSingle(q2) * dv).Store(dst + 16);
                (Vector256.ConvertToSingle(q3) * dv).Store(dst + 24);
            }
            else
            {
                for (int i = 0; i < 32; i++)
                    dst[i] = d * TB.Quant(src, i);
            }
        }
    }
}
