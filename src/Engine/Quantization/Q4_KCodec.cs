namespace Serving.Engine.Quantization;

/// <summary>
/// Q4_K rows (layout in <see cref="Serving.Abstractions.DataType"/>). The quantizer is NOT ggml's (which searches
/// iteratively for the best scales): plain round-to-nearest with per-sub-block scales from the sub-block's range
/// (<see cref="ScaleMinK.Quantize"/>), enough for synthetic and test models; its bytes are valid q4_K any reader
/// decodes, but differ from llama-quantize's. The dequantizer is ggml's dequantize_row_q4_K.
/// </summary>
public static class Q4_KCodec
{
    private const int BlockBytes = 144;

    /// <summary>f32 → Q4_K super-blocks.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<byte> q = stackalloc byte[256];
        for (int b = 0; b < x.Length / 256; b++)
        {
            var yb = y.Slice(b * BlockBytes, BlockBytes);
            ScaleMinK.Quantize(x.Slice(b * 256, 256), yb, 15, q);
            // qs[32g + l] holds element 64g + l in its low nibble and 64g + 32 + l in its high nibble.
            var qs = yb.Slice(16, 128);
            for (int g = 0; g < 4; g++)
                for (int l = 0; l < 32; l++)
                    qs[32 * g + l] = (byte)(q[64 * g + l] | (q[64 * g + 32 + l] << 4));
        }
    }

    /// <summary>Q4_K super-blocks → f32.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y)
    {
        for (int b = 0; b < y.Length / 256; b++)
        {
            var blk = x.Slice(b * BlockBytes, BlockBytes);
            ScaleMinK.Dequantize(blk, blk.Slice(16, 128), default, y.Slice(b * 256, 256));
        }
    }
}
