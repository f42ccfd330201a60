using System.Runtime.InteropServices;

namespace Serving.Engine.Quantization;

/// <summary>F32 rows: little-endian IEEE singles, copied as they are.</summary>
public static class F32Codec
{
    /// <summary>Copies the floats' bytes.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y) => MemoryMarshal.AsBytes(x).CopyTo(y);

    /// <summary>Copies the bytes as floats.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y) => MemoryMarshal.Cast<byte, float>(x).CopyTo(y);
}
