using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels.Formats;

/// <summary>
/// The quants of a "scale and min" K-quant (Q4_K, Q5_K): super-blocks of 256 = 8 sub-blocks of 32, f16 d and dmin at
/// bytes 0..3, the 6-bit scales and mins packed as Q4_K's in bytes 4..15, y = d·sc_j·q − dmin·m_j. Only where and how
/// the quants q are stored differs; <see cref="ScaleMinK"/> (decoding) and <see cref="KQuantMinDot{TQ}"/> (MatMul)
/// hold everything else.
/// </summary>
internal unsafe interface IKQuantMinQuants
{
    /// <summary>Bytes per super-block of 256 elements.</summary>
    static abstract int BlockBytes { get; }

    /// <summary>The 64 quants of chunk g (sub-blocks 2g and 2g+1) of super-block <paramref name="blk"/>, as bytes.</summary>
    static abstract void Unpack(byte* blk, int g, out Vector256<byte> lo, out Vector256<byte> hi);

    /// <summary>Quant i (0..31) of sub-block j (0..7) of super-block <paramref name="blk"/> (the scalar tiers).</summary>
    static abstract int Quant(byte* blk, int j, int i);
}

/// <summary>The shared layout of the scale-and-min K-quants (<see cref="IKQuantMinQuants"/>): scales, mins, decoding.</summary>
internal static unsafe class ScaleMinK
{
    /// <summary>The 8 scales and 8 mins of a super-block as bytes: (scales sc0..sc7, mins m0..m7).</summary>
    /// <remarks>
    /// The 12 packed bytes as three little-endian words u0, u1, u2 (get_scale_min_k4 four bytes at a time):
    /// sc0..3 = low 6 bits of u0's bytes; m0..3 = low 6 bits of u1's; sc4..7 = low nibbles of u2 with u0's top two
    /// bits above them; m4..7 = high nibbles of u2 with u1's top two bits above them.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (ulong Scales, ulong Mins) ScalesMins(byte* packed)
    {
        uint u0 = Unsafe.ReadUnaligned<uint>(packed), u1 = Unsafe.ReadUnaligned<uint>(packed + 4), u2 = Unsafe.ReadUnaligned<uint>(packed + 8);
        const uint low6 = 0x3F3F3F3F, low4 = 0x0F0F0F0F, low2 = 0x03030303;
        uint sLo = u0 & low6, sHi = (u2 & low4) | (((u0 >> 6) & low2) << 4);
        uint mLo = u1 & low6, mHi = ((u2 >> 4) & low4) | (((u1 >> 6) & low2) << 4);
        return (sLo | ((ulong)sHi << 32), mLo | ((ulong)mHi << 32));
    }

    /// <summary>Dequantizes <paramref name="superBlocks"/> super-blocks into 256·superBlocks floats.</summary>
    public static void Decode<TQ>(byte* src, int superBlocks, float* dst) where TQ : struct, IKQuantMinQuants
    {
        for (int sb = 0; sb < superBlocks; sb++, src += TQ.BlockBytes, dst += 256)
        {
            float d = Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(src));
            float dmin = Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(src + 2));
            (ulong scales, ulong mins) = ScalesMins(src + 4);
            if (KQuant.UseAvx2)
            {
                for (int g = 0; g < 4; g++)
                {
                    TQ.Unpack(src, g, out Vector256<byte> lo, out Vector256<byte> hi);
                    Expand32(lo, d * (byte)(scales >> (16 * g)), dmin * (byte)(mins >> (16 * g)), dst + 64 * g);
                    Expand32(hi, d * (byte)(scales >> (16 * g + 8)), dmin * (byte)(mins >> (16 * g + 8)), dst + 64 * g + 32);
                }
                continue;
            }
            for (int j = 0; j < 8; j++)
            {
                float dj = d * (byte)(scales >> (8 * j)), mj = dmin * (byte)(mins >> (8 * j));
                for (int i = 0; i < 32; i++)
                    dst[32 * j + i] = dj * TQ.Quant(src, j, i) - mj;
            }
        }
    }

    /// <summary>
    /// dst[i] = q[i]·scale − offset for 32 byte quants, one product and one difference per element in f32 like
    /// ggml's dequantizers (so exactly the scalar loops' results).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Expand32(Vector256<byte> q, float scale, float offset, float* dst)
    {
        Vector256<float> s = Vector256.Create(scale), o = Vector256.Create(offset);
        Vector128<byte> lo = q.GetLower(), hi = q.GetUpper();
        (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(lo)) * s - o).Store(dst);
        (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(lo, 8))) * s - o).Store(dst + 8);
        (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(hi)) * s - o).Store(dst + 16);
        (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(hi, 8))) * s - o).Store(dst + 24);
    }
}
