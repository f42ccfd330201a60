using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// One K-quant weight format (super-blocks of 256 elements, layouts in <see cref="Serving.Abstractions.DataType"/>)
/// dotted against q8 activations: xq int8 [K], xd f32 [K/32] (<see cref="QuantizeActivations"/>) and, for formats
/// with a min term, xs f32 [K/32] = xd[b]·Σ xq over block b. Each 32-element x block lines up with one weight
/// sub-block (Q4_K, Q5_K) or a pair of 16-element groups (Q6_K), so every block's integer dot is exact and one f32 scale
/// product per block applies it, as in llama.cpp's vec_dot_q4_K_q8_K (whose x scale is per 256, ours per 32).
/// Batch invariance: <see cref="Dot4x1"/> gives, row for row, the bits of <see cref="Dot1"/> (the same int32 lanes,
/// the same f32 products, the same fused multiply-adds into per-row accumulators in the same order).
/// </summary>
internal unsafe interface IKQuant
{
    /// <summary>Bytes per super-block of 256 elements.</summary>
    static abstract int BlockBytes { get; }

    /// <summary>The dot of one weight row of <paramref name="superBlocks"/> super-blocks with one x row.</summary>
    static abstract float Dot1(byte* w, sbyte* xq, float* xd, float* xs, int superBlocks);

    /// <summary>
    /// y[r·yStride] = Dot1(w, x row r) for the 4 x rows r = 0..3 at xq + r·k, xd + r·k/32, xs + r·k/32: each
    /// super-block is unpacked once for the four rows.
    /// </summary>
    static abstract void Dot4x1(byte* w, sbyte* xq, float* xd, float* xs, int k, float* y, int yStride);

    /// <summary>Dequantizes <paramref name="superBlocks"/> super-blocks into 256·superBlocks floats.</summary>
    static abstract void Dequantize(byte* src, int superBlocks, float* dst);
}

/// <summary>Shared pieces of the K-quant kernels.</summary>
internal static unsafe class KQuant
{
    /// <summary>
    /// Whether the AVX2 kernels run: the tier is 256 or 512 bits and the CPU has AVX2 (a forced 256-bit tier on a CPU
    /// without it, and the 128-bit and scalar tiers, run the scalar kernels). Fixed per process.
    /// </summary>
    public static readonly bool UseAvx2 = Simd.Tier >= SimdTier.V256 && Avx2.IsSupported;

    /// <summary>
    /// 32 unsigned quants u dotted with 32 int8 x (in [−127, 127]) into 8 int32 lanes, lane i = Σ u·x over elements
    /// 4i..4i+3. Exact while each int16 pair sum 2·u·127 fits, i.e. for u ≤ 128; Q4_K's u ≤ 15 gives |pair| ≤ 3810, Q5_K's u ≤ 31 |pair| ≤ 7874.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotUnsigned(Vector256<byte> u, Vector256<sbyte> x)
        => Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, x), Vector256.Create((short)1));

    /// <summary>The 8 scales and 8 mins of a Q4_K super-block as bytes: (scales sc0..sc7, mins m0..m7).</summary>
    /// <remarks>
    /// The 12 packed bytes as three little-endian words u0, u1, u2 (get_scale_min_k4 four bytes at a time):
    /// sc0..3 = low 6 bits of u0's bytes; m0..3 = low 6 bits of u1's; sc4..7 = low nibbles of u2 with u0's top two
    /// bits above them; m4..7 = high nibbles of u2 with u1's top two bits above them.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (ulong Scales, ulong Mins) Q4_KScalesMins(byte* packed)
    {
        uint u0 = Unsafe.ReadUnaligned<uint>(packed), u1 = Unsafe.ReadUnaligned<uint>(packed + 4), u2 = Unsafe.ReadUnaligned<uint>(packed + 8);
        const uint low6 = 0x3F3F3F3F, low4 = 0x0F0F0F0F, low2 = 0x03030303;
        uint sLo = u0 & low6, sHi = (u2 & low4) | (((u0 >> 6) & low2) << 4);
        uint mLo = u1 & low6, mHi = ((u2 >> 4) & low4) | (((u1 >> 6) & low2) << 4);
        return (sLo | ((ulong)sHi << 32), mLo | ((ulong)mHi << 32));
    }

    /// <summary>8 bytes (in the low 64 bits) as 8 floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> BytesToFloats(ulong bytes)
        => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Vector128.CreateScalar(bytes).AsByte()));

    /// <summary>
    /// dst[i] = q[i]·scale − offset for 32 byte quants, one product and one difference per element in f32 like
    /// ggml's dequantizers (so exactly the scalar loops' results).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Expand32(Vector256<byte> q, float scale, float offset, float* dst)
    {
        Vector256<float> s = Vector256.Create(scale), o = Vector256.Create(offset);
        Vector128<byte> lo = q.GetLower(), hi = q.GetUpper();
        (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(lo)) * s - o).Store(dst);
        (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(lo, 8))) * s - o).Store(dst + 8);
        (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(hi)) * s - o).Store(dst + 16);
        (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(hi, 8))) * s - o).Store(dst + 24);
    }

    /// <summary>Quant q (0..63) of element e (0..255) of a Q6_K super-block (layout in DataType).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Q6_KQuant(byte* blk, int e)
    {
        int h = e >> 7, which = (e >> 5) & 3, l = e & 31;
        byte lo = blk[64 * h + l + 32 * (which & 1)];
        int low4 = which >= 2 ? lo >> 4 : lo & 0x0F;
        return low4 | (((blk[128 + 32 * h + l] >> (2 * which)) & 3) << 4);
    }
}
