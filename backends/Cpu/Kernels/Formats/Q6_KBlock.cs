using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels.Formats;

/// <summary>
/// Q6_K: 210-byte super-blocks { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d } (bit layout in
/// <see cref="Serving.Abstractions.DataType"/>), y = d·scales[e/16]·(q − 32), q in 0..63. Unpacking and decoding;
/// the MatMul kernels are <see cref="Q6_KDot"/>.
/// </summary>
internal static unsafe class Q6_KBlock
{
    /// <summary>Bytes per super-block of 256 elements.</summary>
    public const int BlockBytes = 210;

    /// <summary>The 128 quants of half h as four blocks of 32 bytes in 0..63 (elements 128h + 32c + 0..31 in qc).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack(byte* blk, int h, out Vector256<byte> q0, out Vector256<byte> q1, out Vector256<byte> q2, out Vector256<byte> q3)
    {
        Vector256<byte> qlA = Vector256.Load(blk + 64 * h), qlB = Vector256.Load(blk + 64 * h + 32);
        Vector256<ushort> qh = Vector256.Load(blk + 128 + 32 * h).AsUInt16();
        Vector256<byte> low4 = Vector256.Create((byte)0x0F), high2 = Vector256.Create((byte)0x30);
        // 16-bit shifts move bits across the byte boundary only into positions the masks clear.
        q0 = (qlA & low4) | (Vector256.ShiftLeft(qh, 4).AsByte() & high2);
        q1 = (qlB & low4) | (Vector256.ShiftLeft(qh, 2).AsByte() & high2);
        q2 = (Vector256.ShiftRightLogical(qlA.AsUInt16(), 4).AsByte() & low4) | (qh.AsByte() & high2);
        q3 = (Vector256.ShiftRightLogical(qlB.AsUInt16(), 4).AsByte() & low4) | (Vector256.ShiftRightLogical(qh, 2).AsByte() & high2);
    }

    /// <summary>Quant q (0..63) of element e (0..255) of a super-block (the scalar tiers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Quant(byte* blk, int e)
    {
        int h = e >> 7, which = (e >> 5) & 3, l = e & 31;
        byte lo = blk[64 * h + l + 32 * (which & 1)];
        int low4 = which >= 2 ? lo >> 4 : lo & 0x0F;
        return low4 | (((blk[128 + 32 * h + l] >> (2 * which)) & 3) << 4);
    }

    /// <summary>Dequantizes k elements (k/256 super-blocks) of a row to f32 (Embed).</summary>
    public static void DecodeRow(byte* row, int k, float* dst)
    {
        for (int sb = 0; sb < k / 256; sb++, row += BlockBytes, dst += 256)
        {
            float d = Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(row + 208));
            sbyte* scales = (sbyte*)(row + 192);
            if (KQuant.UseAvx2)
            {
                for (int h = 0; h < 2; h++)
                {
                    Unpack(row, h, out Vector256<byte> q0, out Vector256<byte> q1, out Vector256<byte> q2, out Vector256<byte> q3);
                    // Elements 128h + 32c + 0..15 are in group 8h + 2c, 16..31 in group 8h + 2c + 1.
                    Half16(q0, d, scales + 8 * h, dst + 128 * h);
                    Half16(q1, d, scales + 8 * h + 2, dst + 128 * h + 32);
                    Half16(q2, d, scales + 8 * h + 4, dst + 128 * h + 64);
                    Half16(q3, d, scales + 8 * h + 6, dst + 128 * h + 96);
                }
                continue;
            }
            for (int e = 0; e < 256; e++)
                dst[e] = d * scales[e >> 4] * (Quant(row, e) - 32);
        }
    }

    // 32 quants of two 16-element groups with scales sc[0], sc[1] into dst: (d·sc)·(q − 32) with q − 32 formed in
    // int32, one f32 rounding, as the scalar loop.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Half16(Vector256<byte> q, float d, sbyte* sc, float* dst)
    {
        Vector256<float> v0 = Vector256.Create(d * sc[0]), v1 = Vector256.Create(d * sc[1]);
        Vector256<int> bias = Vector256.Create(32);
        Vector128<byte> lo = q.GetLower(), hi = q.GetUpper();
        (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(lo) - bias) * v0).Store(dst);
        (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(lo, 8)) - bias) * v0).Store(dst + 8);
        (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(hi) - bias) * v1).Store(dst + 16);
        (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(hi, 8)) - bias) * v1).Store(dst + 24);
    }
}
