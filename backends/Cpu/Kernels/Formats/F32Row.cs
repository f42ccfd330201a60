using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels.Formats;

/// <summary>F32 rows: plain loads (MatMul) and a plain copy (Embed).</summary>
internal unsafe struct F32Row : IFloatRow
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

    /// <summary>Copies k elements of a row (Embed).</summary>
    public static void DecodeRow(byte* row, int k, float* dst) => Buffer.MemoryCopy(row, dst, (long)k * sizeof(float), (long)k * sizeof(float));
}
