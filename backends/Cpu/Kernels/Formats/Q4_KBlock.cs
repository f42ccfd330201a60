using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels.Formats;

/// <summary>
/// Q4_K: 144-byte super-blocks of d, dmin, 12 bytes of scales and mins, then qs[128]; sub-block 2g holds the low
/// nibbles of qs[32g..32g+31], sub-block 2g+1 their high nibbles. Scales and mins: <see cref="ScaleMinK"/>; the MatMul
/// kernels are <see cref="KQuantMinDot{TQ}"/>.
/// </summary>
internal unsafe struct Q4_KBlock : IKQuantMinQuants
{
    /// <inheritdoc/>
    public static int BlockBytes => 144;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack(byte* blk, int g, out Vector256<byte> lo, out Vector256<byte> hi)
    {
        Vector256<byte> raw = Vector256.Load(blk + 16 + 32 * g);
        Vector256<byte> mask = Vector256.Create((byte)0x0F);
        lo = raw & mask;
        hi = Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Quant(byte* blk, int j, int i) => (blk[16 + 32 * (j >> 1) + i] >> (4 * (j & 1))) & 0x0F;

    /// <summary>Dequantizes k elements (k/256 super-blocks) of a row to f32 (Embed).</summary>
    public static void DecodeRow(byte* row, int k, float* dst) => ScaleMinK.Decode<Q4_KBlock>(row, k / 256, dst);
}
