using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// Q5_K super-blocks (layout in <see cref="DataType"/>): Q4_K's scheme (and its caveat: not ggml's quantizer, see
/// <see cref="Q4_KCodec"/>) with 31 steps per sub-block. The dequantizer is ggml's dequantize_row_q5_K.
/// </summary>
public static class Q5_KCodec
{
    /// <summary>f32 → Q5_K super-blocks.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y) => Blocks.Quantize(DataType.Q5_K, x, y, QuantizeBlock);

    /// <summary>Q5_K super-blocks → f32.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y)
        => Blocks.Dequantize(DataType.Q5_K, x, y, static (block, values) => ScaleMinK.Dequantize(block, block.Slice(48, 128), block.Slice(16, 32), values));

    // The low 4 bits of each quant go where Q4_K's nibble goes, bit 4 of element 64g + l to bit 2g of qh[l] and of
    // element 64g + 32 + l to bit 2g + 1.
    private static void QuantizeBlock(ReadOnlySpan<float> x, Span<byte> block)
    {
        Span<byte> q = stackalloc byte[256];
        ScaleMinK.Quantize(x, block, 31, q);
        var qh = block.Slice(16, 32);
        var qs = block.Slice(48, 128);
        qh.Clear();
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
            {
                int lo = q[64 * g + l], hi = q[64 * g + 32 + l];
                qs[32 * g + l] = (byte)((lo & 0x0F) | ((hi & 0x0F) << 4));
                qh[l] |= (byte)(((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1)));
            }
    }
}
