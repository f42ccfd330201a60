using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>F16 weights: IEEE half widened to f32 in registers (exact), then f32 FMA against f32 x.</summary>
internal unsafe struct MatMulF16 : IFloatRow
{
    /// <inheritdoc/>
    public static int ElementBytes => 2;

    /// <inheritdoc/>
    public static bool Converts => true;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, int k) => Simd.HalfToFloat(Simd.LoadWiden512((ushort*)row + k));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, int k) => Simd.HalfToFloat(Simd.LoadWiden256((ushort*)row + k));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load128(byte* row, int k) => Simd.HalfToFloat(Simd.LoadWiden128((ushort*)row + k));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, int k) => Simd.HalfToFloat(((ushort*)row)[k]);
}
