using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels.Formats;

/// <summary>
/// F16 rows read as 2^-112 times their values (<see cref="HalfVector.WidenScaled"/> in registers: sign-extend, shift,
/// mask; exact for every finite half, meaningless for ∞ and NaN). Only for a caller that puts the 2^112 on the other
/// factor and has checked the rows for ∞/NaN (<see cref="HalfVector.HasSpecial"/>): f16 attention when few heads
/// share a kv head, where widening into scratch first would cost more than converting at every load.
/// </summary>
internal unsafe struct F16ScaledRow : IFloatRow
{
    private const uint Keep = 0x8FFFE000u;

    /// <inheritdoc/>
    public static int ElementBytes => 2;

    /// <inheritdoc/>
    public static bool Converts => true;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, int k)
        => (Vector512.WidenLower(Vector256.Load((short*)row + k).ToVector512Unsafe()) << 13 & Vector512.Create(Keep).AsInt32()).AsSingle();

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, int k)
        => (Vector256.WidenLower(Vector128.Load((short*)row + k).ToVector256Unsafe()) << 13 & Vector256.Create(Keep).AsInt32()).AsSingle();

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load128(byte* row, int k)
        => (Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<long>((short*)row + k)).AsInt16()) << 13 & Vector128.Create(Keep).AsInt32()).AsSingle();

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, int k) => BitConverter.UInt32BitsToSingle((uint)(((short*)row)[k] << 13) & Keep);
}
