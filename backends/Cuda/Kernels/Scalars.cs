using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>
/// Bit-level conversions and the int8 dot product, written with integer operations only so the CPU accelerator and
/// the GPU compute the same bits (no reliance on a device's f16 conversion instructions). <see cref="Dot4{TM}"/> is the
/// one place with inline PTX: <c>dp4a</c> where the mode asks for it (sm_61 and later), the portable form elsewhere.
/// </summary>
internal static class Scalars
{
    /// <summary>IEEE binary16 bits → f32 (exact, subnormals, ±∞ and NaN included).</summary>
    public static float HalfToFloat(uint h)
    {
        uint sign = (h & 0x8000u) << 16;
        uint exponent = (h >> 10) & 0x1Fu;
        uint mantissa = h & 0x3FFu;
        if (exponent == 0x1Fu)
            return global::ILGPU.Interop.IntAsFloat(sign | 0x7F800000u | (mantissa << 13));
        if (exponent != 0)
            return global::ILGPU.Interop.IntAsFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
        float subnormal = mantissa * (1f / 16777216f); // mantissa · 2⁻²⁴, exact
        return sign != 0 ? -subnormal : subnormal;
    }

    /// <summary>bf16 bits → f32 (exact: the top half of an f32).</summary>
    public static float BFloatToFloat(uint b) => global::ILGPU.Interop.IntAsFloat(b << 16);

    /// <summary>f32 → IEEE binary16 bits, to nearest, ties to even, overflow to ±∞ (as .NET's <c>(Half)x</c>).</summary>
    public static uint FloatToHalf(float value)
    {
        uint x = global::ILGPU.Interop.FloatAsInt(value);
        uint sign = (x >> 16) & 0x8000u;
        uint magnitude = x & 0x7FFFFFFFu;
        if (magnitude >= 0x7F800000u) // ±∞ or NaN (NaN stays NaN: quiet bit set, payload's top bits kept)
            return sign | 0x7C00u | (magnitude > 0x7F800000u ? 0x200u | ((magnitude >> 13) & 0x3FFu) : 0u);
        if (magnitude >= 0x477FF000u) // ≥ 65520 rounds to ∞
            return sign | 0x7C00u;
        if (magnitude >= 0x38800000u) // normal half: rebias the exponent, round the mantissa to 10 bits
        {
            uint rebiased = magnitude - 0x38000000u;
            return sign | ((rebiased + 0xFFFu + ((rebiased >> 13) & 1u)) >> 13);
        }
        uint biased = magnitude >> 23;
        if (biased < 102u) // below 2⁻²⁵: rounds to zero
            return sign;
        // A half subnormal (or the smallest normal after rounding up): units of 2⁻²⁴.
        uint mant = (magnitude & 0x7FFFFFu) | 0x800000u;
        int shift = 126 - (int)biased; // 14..24
        uint q = mant >> shift;
        uint rem = mant & ((1u << shift) - 1u);
        uint half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u) != 0))
            q++;
        return sign | q;
    }

    /// <summary>c + Σ of the four signed-byte products of <paramref name="a"/> and <paramref name="b"/>.</summary>
    public static int Dot4<TM>(int a, int b, int c) where TM : struct, IKernelMode
    {
        if (default(TM).Dp4a && CudaAsm.IsSupported)
        {
            CudaAsm.Emit("dp4a.s32.s32 %0, %1, %2, %3;", out int d, a, b, c);
            return d;
        }
        return c + (sbyte)a * (sbyte)b + (sbyte)(a >> 8) * (sbyte)(b >> 8) + (sbyte)(a >> 16) * (sbyte)(b >> 16) + (a >> 24) * (b >> 24);
    }

    /// <summary>Each byte of <paramref name="q"/> (0..2·<paramref name="bias"/>−1) minus <paramref name="bias"/> as a
    /// signed byte, without carries between bytes: (q + (128 − bias)) ^ 128 per byte.</summary>
    public static int Center(uint q, uint bias)
    {
        uint add = (128u - bias) * 0x01010101u;
        return (int)((q + add) ^ 0x80808080u);
    }

    /// <summary>Signed byte <paramref name="index"/> (0..3) of a word.</summary>
    public static int SByte(uint word, int index) => (sbyte)(byte)(word >> (8 * index));

    /// <summary>Unsigned byte <paramref name="index"/> (0..3) of a word.</summary>
    public static uint Byte(uint word, int index) => (word >> (8 * index)) & 0xFFu;

    /// <summary>Bits 0..3 of <paramref name="bits"/> spread to bit 0 of bytes 0..3.</summary>
    public static uint SpreadNibble(uint bits)
        => (bits & 1u) | ((bits & 2u) << 7) | ((bits & 4u) << 14) | ((bits & 8u) << 21);
}
