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

    /// <summary>
    /// Whether the dots read xs, the per-block sums of x (formats with a min term); the driver computes them only then.
    /// </summary>
    static abstract bool BlockSums { get; }
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

    /// <summary>8 bytes (in the low 64 bits) as 8 floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> BytesToFloats(ulong bytes)
        => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Vector128.CreateScalar(bytes).AsByte()));
}
