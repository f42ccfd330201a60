using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels.Formats;

/// <summary>F16 rows: IEEE half widened to f32 in registers (exact); MatMul then uses f32 FMA against f32 x.</summary>
internal unsafe struct F16Row : IFloatRow
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

    /// <summary>Converts k elements of a row to f32 (Embed).</summary>
    public static void DecodeRow(byte* row, int k, float* dst) => FloatRow.Convert<F16Row>(row, dst, k);
}
