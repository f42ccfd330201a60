using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// Q4_K super-blocks (layout in <see cref="DataType"/>). The quantizer is NOT ggml's (which searches iteratively for
/// the best scales): plain round-to-nearest with per-sub-block scales from the sub-block's range
/// (<see cref="ScaleMinK.Quantize"/>), enough for synthetic and test models; its bytes are valid q4_K any reader
/// decodes, but differ from llama-quantize's. The dequantizer is ggml's dequantize_row_q4_K.
/// </summary>
public static class Q4_KCodec
{
    /// <summary>f32 → Q4_K super-blocks.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y) => Blocks.Quantize(DataType.Q4_K, x, y, QuantizeBlock);

    /// <summary>Q4_K super-blocks → f32.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y)
        => Blocks.Dequantize(DataType.Q4_K, x, y, static (block, values) => ScaleMinK.Dequantize(block, block.Slice(16, 128), default, values));

    // qs[32g + l] holds element 64g + l in its low nibble and 64g + 32 + l in its high nibble.
    private static void QuantizeBlock(ReadOnlySpan<float> x, Span<byte> block)
    {
        Span<byte> q = stackalloc byte[256];
        ScaleMinK.Quantize(x, block, 15, q);
        var qs = block.Slice(16, 128);
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
                qs[32 * g + l] = (byte)(q[64 * g + l] | (q[64 * g + 32 + l] << 4));
    }
}
