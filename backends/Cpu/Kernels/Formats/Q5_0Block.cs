using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels.Formats;

/// <summary>
/// GGUF Q5_0 blocks: { f16 d; uint8 qh[4]; uint8 qs[16] } (22 bytes). Element i &lt; 16 is the low nibble of qs[i],
/// element i ≥ 16 the high nibble of qs[i − 16], each with bit i of the little-endian uint32 qh as its fifth bit;
/// value = d · (q − 16). Unpacked to int8 in [−16, 15] and dotted against q8 activations like Q4_0.
/// </summary>
internal unsafe struct Q5_0Block : IQuantBlock
{
    /// <inheritdoc/>
    public static int BlockBytes => 22;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* block) => Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(block));

    /// <summary>The 32 quants as unsigned bytes q in [0, 31], in element order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Unsigned256(byte* block)
        => Int8Dot.Nibbles(block + 6) | Int8Dot.HighBits(Unsafe.ReadUnaligned<uint>(block + 2));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants256(byte* block)
        => Unsigned256(block).AsSByte() - Vector256.Create((sbyte)16);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<sbyte> QuantsLo128(byte* block)
        => ((Vector128.Load(block + 6) & Vector128.Create((byte)0x0F)) | Int8Dot.HighBits(Unsafe.ReadUnaligned<uint>(block + 2)).GetLower())
            .AsSByte() - Vector128.Create((sbyte)16);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<sbyte> QuantsHi128(byte* block)
        => (Vector128.ShiftRightLogical(Vector128.Load(block + 6), 4) | Int8Dot.HighBits(Unsafe.ReadUnaligned<uint>(block + 2)).GetUpper())
            .AsSByte() - Vector128.Create((sbyte)16);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> XBias256(Vector256<sbyte> x) => Int8Dot.OffsetBias(x, 16);

    /// <summary>
    /// Dots the unsigned 5-bit quants directly and takes 16·Σx off per pair (Q4_0's trick with offset 16): lane for
    /// lane the same as the signed dot, since |pair| ≤ 2·31·127 never saturates.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot256(byte* block, Vector256<sbyte> x, Vector256<short> xBias)
    {
        if (!Int8Dot.HasUnsignedDot)
            return Int8Dot.Dot(Quants256(block), x);
        return Int8Dot.DotOffset(Unsigned256(block), x, xBias, 16);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Quant(byte* block, int i)
    {
        byte packed = block[6 + (i & 15)];
        int high = (int)((Unsafe.ReadUnaligned<uint>(block + 2) >> i) & 1);
        return ((i < 16 ? packed & 0x0F : packed >> 4) | (high << 4)) - 16;
    }

    /// <summary>Dequantizes k elements (k/32 blocks) of a row to f32 (Embed).</summary>
    public static void DecodeRow(byte* row, int k, float* dst) => QuantBlock.Decode<Q5_0Block>(row, k / 32, dst);
}
