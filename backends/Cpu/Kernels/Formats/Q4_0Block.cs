using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels.Formats;

/// <summary>
/// GGUF Q4_0 blocks: { f16 d; uint8 qs[16] } (18 bytes). Element i &lt; 16 is the low nibble of qs[i], element
/// i ≥ 16 the high nibble of qs[i − 16]; value = d · (nibble − 8). Unpacked to int8 in [-8, 7] and dotted against
/// q8 activations like llama.cpp's vec_dot_q4_0_q8_0.
/// </summary>
internal unsafe struct Q4_0Block : IQuantBlock
{
    /// <inheritdoc/>
    public static int BlockBytes => 18;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* block) => Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(block));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants256(byte* block)
        => Int8Dot.Nibbles(block + 2).AsSByte() - Vector256.Create((sbyte)8);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<sbyte> QuantsLo128(byte* block)
        => (Vector128.Load(block + 2) & Vector128.Create((byte)0x0F)).AsSByte() - Vector128.Create((sbyte)8);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<sbyte> QuantsHi128(byte* block)
        => Vector128.ShiftRightLogical(Vector128.Load(block + 2), 4).AsSByte() - Vector128.Create((sbyte)8);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> XBias256(Vector256<sbyte> x) => Int8Dot.OffsetBias(x);

    /// <summary>
    /// Dots the unsigned nibbles u directly and takes 8·Σx off per pair (llama.cpp's AVX2 q4_0 idea): one shift and
    /// one mask unpack the 32 nibbles, with no −8, abs or sign per block. Lane for lane the same as the signed dot.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot256(byte* block, Vector256<sbyte> x, Vector256<short> xBias)
    {
        if (!Int8Dot.HasUnsignedDot)
            return Int8Dot.Dot(Quants256(block), x);
        return Int8Dot.DotOffset(Int8Dot.Nibbles(block + 2), x, xBias);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Quant(byte* block, int i)
    {
        byte packed = block[2 + (i & 15)];
        return (i < 16 ? packed & 0x0F : packed >> 4) - 8;
    }

    /// <summary>Dequantizes k elements (k/32 blocks) of a row to f32 (Embed).</summary>
    public static void DecodeRow(byte* row, int k, float* dst) => QuantBlock.Decode<Q4_0Block>(row, k / 32, dst);
}
