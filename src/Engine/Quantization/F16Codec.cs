using System.Runtime.InteropServices;

namespace Serving.Engine.Quantization;

/// <summary>F16 rows: IEEE halves, rounded to nearest even on the way in (like F16C's _cvtss_sh(x, 0) in ggml).</summary>
public static class F16Codec
{
    /// <summary>f32 → f16, round to nearest even (.NET's float-to-Half conversion).</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        var h = MemoryMarshal.Cast<byte, Half>(y);
        for (int i = 0; i < x.Length; i++)
            h[i] = (Half)x[i];
    }

    /// <summary>f16 → f32 (exact).</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y)
    {
        var h = MemoryMarshal.Cast<byte, Half>(x);
        for (int i = 0; i < h.Length; i++)
            y[i] = (float)h[i];
    }
}
