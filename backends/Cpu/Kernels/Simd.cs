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

    /// <summary>Half bits (zero-extended to 32 bits per lane) to floats; same rules as the scalar form.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> HalfToFloat(Vector512<uint> h)
    {
        Vector512<uint> sign = (h & Vector512.Create(0x8000u)) << 16;
        Vector512<uint> em = h & Vector512.Create(0x7FFFu);
        Vector512<uint> o = em << 13;
        Vector512<uint> normal = (o.AsSingle() * Vector512.Create(TwoPow112)).AsUInt32();
        Vector512<uint> special = o | Vector512.Create(0x7F800000u);
        Vector512<uint> isSpecial = Vector512.GreaterThanOrEqual(em, Vector512.Create(0x7C00u));
        return (Vector512.ConditionalSelect(isSpecial, special, normal) | sign).AsSingle();
    }

    /// <inheritdoc cref="HalfToFloat(Vector512{uint})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> HalfToFloat(Vector256<uint> h)
    {
        Vector256<uint> sign = (h & Vector256.Create(0x8000u)) << 16;
        Vector256<uint> em = h & Vector256.Create(0x7FFFu);
        Vector256<uint> o = em << 13;
        Vector256<uint> normal = (o.AsSingle() * Vector256.Create(TwoPow112)).AsUInt32();
        Vector256<uint> special = o | Vector256.Create(0x7F800000u);
        Vector256<uint> isSpecial = Vector256.GreaterThanOrEqual(em, Vector256.Create(0x7C00u));
        return (Vector256.ConditionalSelect(isSpecial, special, normal) | sign).AsSingle();
    }

    /// <inheritdoc cref="HalfToFloat(Vector512{uint})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> HalfToFloat(Vector128<uint> h)
    {
        Vector128<uint> sign = (h & Vector128.Create(0x8000u)) << 16;
        Vector128<uint> em = h & Vector128.Create(0x7FFFu);
        Vector128<uint> o = em << 13;
        Vector128<uint> normal = (o.AsSingle() * Vector128.Create(TwoPow112)).AsUInt32();
        Vector128<uint> special = o | Vector128.Create(0x7F800000u);
        Vector128<uint> isSpecial = Vector128.GreaterThanOrEqual(em, Vector128.Create(0x7C00u));
        return (Vector128.ConditionalSelect(isSpecial, special, normal) | sign).AsSingle();
    }

    /// <summary>16 consecutive u16 values zero-extended to u32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector512<uint> LoadWiden512(ushort* p) => Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe());

    /// <summary>8 consecutive u16 values zero-extended to u32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<uint> LoadWiden256(ushort* p) => Vector256.WidenLower(Vector128.Load(p).ToVector256Unsafe());

    /// <summary>4 consecutive u16 values zero-extended to u32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector128<uint> LoadWiden128(ushort* p) => Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)).AsUInt16());
}
