using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>BF16 weights: the 16 bits shifted into the top of an f32 (exact), then f32 FMA against f32 x.</summary>
internal unsafe struct MatMulBF16 : IFloatRow
{
    /// <inheritdoc/>
    public static int ElementBytes => 2;

    /// <inheritdoc/>
    public static bool Converts => true;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, int k) => (Simd.LoadWiden512((ushort*)row + k) << 16).AsSingle();

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, int k) => (Simd.LoadWiden256((ushort*)row + k) << 16).AsSingle();

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load128(byte* row, int k) => (Simd.LoadWiden128((ushort*)row + k) << 16).AsSingle();

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, int k) => Simd.BFloat16ToFloat(((ushort*)row)[k]);
}
