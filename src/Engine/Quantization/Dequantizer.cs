using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// Scalar reference conversion of stored rows back to f32 (ggml's dequantize_row_* semantics, the codecs of
/// <see cref="WeightFormats"/>). Meant for host-side checks and tests, not for the hot path.
/// </summary>
public static class Dequantizer
{
    /// <summary>
    /// Expands <paramref name="source"/> (exactly <c>type.RowBytes(destination.Length)</c> bytes of
    /// <paramref name="type"/>) into <paramref name="destination"/>. I32, not a weight format, is converted value by
    /// value. Throws <see cref="ArgumentException"/> for a size mismatch or a type that is neither.
    /// </summary>
    public static void DequantizeRow(DataType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (type != DataType.I32)
        {
            WeightFormats.Get(type).Dequantize(source, destination);
            return;
        }
        if (source.Length != (long)destination.Length * sizeof(int))
            throw new ArgumentException($"{destination.Length} i32 elements need {destination.Length * sizeof(int)} bytes, source has {source.Length}", nameof(source));
        var ints = MemoryMarshal.Cast<byte, int>(source);
        for (int i = 0; i < ints.Length; i++)
            destination[i] = ints[i];
    }
}
