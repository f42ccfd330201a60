using System.Runtime.InteropServices;

namespace Serving.Engine.Quantization;

/// <summary>BF16 rows: the top 16 bits of an f32, rounded as ggml_compute_fp32_to_bf16 does.</summary>
public static class BF16Codec
{
    /// <summary>f32 → bf16 bits for each element (<see cref="FromSingle"/>).</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        var b = MemoryMarshal.Cast<byte, ushort>(y);
        for (int i = 0; i < x.Length; i++)
            b[i] = FromSingle(x[i]);
    }

    /// <summary>bf16 → f32 for each element (exact).</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y)
    {
        var b = MemoryMarshal.Cast<byte, ushort>(x);
        for (int i = 0; i < b.Length; i++)
            y[i] = ToSingle(b[i]);
    }

    /// <summary>f32 → bf16 bits as ggml does: round to nearest even; NaN stays NaN (quiet bit forced).</summary>
    public static ushort FromSingle(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7fffffff) > 0x7f800000)
            return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }

    /// <summary>bf16 bits → f32 (exact: the bits become the top half of an f32).</summary>
    public static float ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
}
