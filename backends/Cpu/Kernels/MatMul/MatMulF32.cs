using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>F32 weights: plain loads.</summary>
internal unsafe struct MatMulF32 : IFloatRow
{
    /// <inheritdoc/>
    public static int ElementBytes => 4;

    /// <inheritdoc/>
    public static bool Converts => false;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load512(byte* row, int k) => Vector512.Load((float*)row + k);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load256(byte* row, int k) => Vector256.Load((float*)row + k);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load128(byte* row, int k) => Vector128.Load((float*)row + k);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, int k) => ((float*)row)[k];
}
