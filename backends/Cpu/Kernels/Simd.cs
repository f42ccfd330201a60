using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>The vector width every kernel uses in this process, widest accelerated first.</summary>
internal enum SimdTier
{
    /// <summary>Plain scalar loops (DOTNET_EnableHWIntrinsic=0, or no SIMD at all).</summary>
    Scalar = 0,
    /// <summary>Vector128 (SSE4 / AdvSimd).</summary>
    V128 = 128,
    /// <summary>Vector256 (AVX2).</summary>
    V256 = 256,
    /// <summary>Vector512 (AVX-512).</summary>
    V512 = 512,
}

/// <summary>
/// Tier selection and the small helpers kernels share (half and bfloat16 to float, prefetch). The element-wise and
/// row-reduction kernels run their loops through <see cref="VectorDriver"/>, which reads <see cref="Tier"/> in one place.
/// </summary>
internal static class Simd
{
    /// <summary>
    /// The tier in use. A static readonly value: the JIT folds every switch on it to the one branch taken.
    /// SERVING_CPU_SIMD=scalar|128|256|512 overrides it for testing every tier on one machine; a tier above what the
    /// hardware accelerates still computes correctly (the runtime emulates wide vectors) but slowly.
    /// </summary>
    public static readonly SimdTier Tier = Detect();

    /// <summary>2^112: rebiases an f16 exponent (bias 15) placed in an f32 (bias 127).</summary>
    private const float TwoPow112 = 5.192296858534828E+33f;

    private static SimdTier Detect()
    {
        SimdTier hardware = Vector512.IsHardwareAccelerated ? SimdTier.V512
            : Vector256.IsHardwareAccelerated ? SimdTier.V256
            : Vector128.IsHardwareAccelerated ? SimdTier.V128
            : SimdTier.Scalar;
        return Environment.GetEnvironmentVariable("SERVING_CPU_SIMD")?.Trim().ToLowerInvariant() switch
        {
            "scalar" => SimdTier.Scalar,
            "128" => SimdTier.V128,
            "256" => SimdTier.V256,
            "512" => SimdTier.V512,
            _ => hardware,
        };
    }

    /// <summary>Bytes ahead of a weight stream that <see cref="PrefetchAhead"/> asks for.</summary>
    public const int PrefetchDistance = 2048;

    /// <summary>
    /// Asks for the cache lines <see cref="PrefetchDistance"/> bytes ahead of <paramref name="p"/>, up to
    /// <paramref name="bytes"/> of them (one request per 64 bytes). Weight rows are read once per step, back to back:
    /// the hardware prefetchers stop at 4 KiB pages and start again slowly, and the quantized kernels, whose compute
    /// per byte is about the memory rate, then stall instead of overlapping the two (1b q4_K decode +10 %, measured).
    /// Changes no result.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void PrefetchAhead(byte* p, int bytes)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        for (int o = 0; o < bytes; o += 64)
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(p + PrefetchDistance + o);
    }

    /// <summary>Display name of the tier ("Vector256").</summary>
    public static string TierName => Tier == SimdTier.Scalar ? "scalar" : $"Vector{(int)Tier}";

    /// <summary>IEEE half bits to float, exact for every value including subnormals, infinities and NaN payloads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HalfToFloat(ushort h)
    {
        uint sign = (uint)(h & 0x8000) << 16;
        uint em = (uint)(h & 0x7FFF);
        uint o = em << 13;
        uint bits = em >= 0x7C00
            ? o | 0x7F800000
            : BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(o) * TwoPow112);
        return BitConverter.UInt32BitsToSingle(bits | sign);
    }

    /// <summary>bfloat16 bits to float (exact: bf16 is the top half of an f32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BFloat16ToFloat(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);

    /// <summary>Half bits (zero-extended to 32 bits per lane) to floats; same rules as the scalar form. The one body for
    /// every width is <see cref="HalfVector.ToFloat{TW, TU, TF}"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> HalfToFloat(Vector512<uint> h) => HalfVector.ToFloat<U32x16, Vector512<uint>, Vector512<float>>(h);

    /// <inheritdoc cref="HalfToFloat(Vector512{uint})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> HalfToFloat(Vector256<uint> h) => HalfVector.ToFloat<U32x8, Vector256<uint>, Vector256<float>>(h);

    /// <inheritdoc cref="HalfToFloat(Vector512{uint})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> HalfToFloat(Vector128<uint> h) => HalfVector.ToFloat<U32x4, Vector128<uint>, Vector128<float>>(h);

    /// <summary>16 consecutive u16 values zero-extended to u32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector512<uint> LoadWiden512(ushort* p) => U32x16.LoadWiden(p);

    /// <summary>8 consecutive u16 values zero-extended to u32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<uint> LoadWiden256(ushort* p) => U32x8.LoadWiden(p);

    /// <summary>4 consecutive u16 values zero-extended to u32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector128<uint> LoadWiden128(ushort* p) => U32x4.LoadWiden(p);
}
