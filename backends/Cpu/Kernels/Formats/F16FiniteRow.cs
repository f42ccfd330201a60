using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels.Formats;

/// <summary>
/// F16 rows known to hold no ∞ or NaN (<see cref="CpuWeight.HalvesFinite"/>): each half widened to f32 in three vector
/// operations — sign-extend, shift the 15 bits of exponent and mantissa into place, mask — and one multiply by 2^112
/// (<see cref="HalfVector.Unscale"/>), which rebiases the exponent exactly for normals and subnormals alike. The
/// values, so every product and sum, are bit for bit those of <see cref="F16Row"/>, whose general conversion also
/// handles ∞ and NaN at about three times the operations: the difference between f16 decode streaming at the memory's
/// rate or at the conversion's.
/// </summary>
internal unsafe struct F16FiniteRow : IFloatRow
{
    /// <summary>Keeps the sign (the sign-extended half's copy at bit 31) and the 15 bits shifted to bits 13..27.</summary>
    private const uint Keep = 0x8FFFE000u;

    /// <inheritdoc/>
    public static int ElementBytes => 2;

    /// <inheritdoc/>
    public static bool Converts => true;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, int k)
    {
        Vector512<int> h = Vector512.WidenLower(Vector256.Load((short*)row + k).ToVector512Unsafe());
        return (h << 13 & Vector512.Create(Keep).AsInt32()).AsSingle() * Vector512.Create(HalfVector.Unscale);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, int k)
    {
        Vector256<int> h = Vector256.WidenLower(Vector128.Load((short*)row + k).ToVector256Unsafe());
        return (h << 13 & Vector256.Create(Keep).AsInt32()).AsSingle() * Vector256.Create(HalfVector.Unscale);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load128(byte* row, int k)
    {
        // 8 bytes: exactly the 4 halves, never past the row's end.
        Vector128<int> h = Vector128.WidenLower(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>((short*)row + k)).AsInt16());
        return (h << 13 & Vector128.Create(Keep).AsInt32()).AsSingle() * Vector128.Create(HalfVector.Unscale);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, int k) => Simd.HalfToFloat(((ushort*)row)[k]);
}
