using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// GGUF Q4_0 weights: { f16 d; uint8 qs[16] } (18 bytes). Element i &lt; 16 is the low nibble of qs[i], element
/// i ≥ 16 the high nibble of qs[i − 16]; value = d · (nibble − 8). Unpacked to int8 in [-8, 7] and dotted against
/// q8 activations like llama.cpp's vec_dot_q4_0_q8_0.
/// </summary>
internal unsafe struct MatMulQ4_0 : IQuantBlock
{
    /// <inheritdoc/>
    public static int BlockBytes => 18;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* block) => Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(block));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants256(byte* block)
    {
        Vector128<byte> packed = Vector128.Load(block + 2);
        Vector256<byte> nibbles = Vector256.Create(packed & Vector128.Create((byte)0x0F), Vector128.ShiftRightLogical(packed, 4));
        return nibbles.AsSByte() - Vector256.Create((sbyte)8);
    }

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
    public static int Quant(byte* block, int i)
    {
        byte packed = block[2 + (i & 15)];
        return (i < 16 ? packed & 0x0F : packed >> 4) - 8;
    }
}
