using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels.Formats;

/// <summary>
/// GGUF Q8_0 blocks: { f16 d; int8 qs[32] } (34 bytes), value = d · qs[i]. The dot product against q8
/// activations is llama.cpp's vec_dot_q8_0_q8_0: an exact int8 dot per block, scaled by d_w · d_x.
/// </summary>
internal unsafe struct Q8_0Block : IQuantBlock
{
    /// <inheritdoc/>
    public static int BlockBytes => 34;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* block) => Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(block));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Quants256(byte* block) => Vector256.Load((sbyte*)(block + 2));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<sbyte> QuantsLo128(byte* block) => Vector128.Load((sbyte*)(block + 2));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<sbyte> QuantsHi128(byte* block) => Vector128.Load((sbyte*)(block + 18));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> XBias256(Vector256<sbyte> x) => Vector256<short>.Zero;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot256(byte* block, Vector256<sbyte> x, Vector256<short> xBias) => Int8Dot.Dot(Quants256(block), x);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Quant(byte* block, int i) => ((sbyte*)(block + 2))[i];

    /// <summary>Dequantizes k elements (k/32 blocks) of a row to f32 (Embed).</summary>
    public static void DecodeRow(byte* row, int k, float* dst) => QuantBlock.Decode<Q8_0Block>(row, k / 32, dst);
}
