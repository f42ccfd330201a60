using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels.Formats;

/// <summary>
/// Q5_K: 176-byte super-blocks of d, dmin, 12 bytes of scales and mins, qh[32] and qs[128]; Q4_K's nibbles
/// (<see cref="Q4_KBlock"/>) at qs with a fifth bit, q in 0..31. The fifth bit of the quants of chunk g is bit 2g (low
/// nibbles) or 2g + 1 (high nibbles) of qh[0..31], one byte per lane, so each chunk adds one AND, one compare and one OR
/// per half to Q4_K's unpacking. Scales and mins: <see cref="ScaleMinK"/>; the MatMul kernels are <see cref="KQuantMinDot{TQ}"/>.
/// </summary>
internal unsafe struct Q5_KBlock : IKQuantMinQuants
{
    /// <inheritdoc/>
    public static int BlockBytes => 176;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack(byte* blk, int g, out Vector256<byte> lo, out Vector256<byte> hi)
    {
        Vector256<byte> qh = Vector256.Load(blk + 16);
        Vector256<byte> raw = Vector256.Load(blk + 48 + 32 * g);
        Vector256<byte> mask = Vector256.Create((byte)0x0F), five = Vector256.Create((byte)0x10);
        Vector256<byte> b0 = Vector256.Create((byte)(1 << (2 * g))), b1 = Vector256.Create((byte)(2 << (2 * g)));
        lo = (raw & mask) | (Vector256.Equals(qh & b0, b0) & five);
        hi = (Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask) | (Vector256.Equals(qh & b1, b1) & five);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Quant(byte* blk, int j, int i)
        => ((blk[48 + 32 * (j >> 1) + i] >> (4 * (j & 1))) & 0x0F) | (((blk[16 + i] >> j) & 1) << 4);

    /// <summary>Dequantizes k elements (k/256 super-blocks) of a row to f32 (Embed).</summary>
    public static void DecodeRow(byte* row, int k, float* dst) => ScaleMinK.Decode<Q5_KBlock>(row, k / 256, dst);
}
