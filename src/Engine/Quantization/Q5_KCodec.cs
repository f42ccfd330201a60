namespace Serving.Engine.Quantization;

/// <summary>
/// Q5_K rows (layout in <see cref="Serving.Abstractions.DataType"/>): Q4_K's scheme (and its caveat: not ggml's
/// quantizer, see <see cref="Q4_KCodec"/>) with 31 steps per sub-block; the low 4 bits of each quant go where Q4_K's
/// nibble goes, bit 4 of element 64g + l to bit 2g of qh[l] and of element 64g + 32 + l to bit 2g + 1.
/// </summary>
public static class Q5_KCodec
{
    private const int BlockBytes = 176;

    /// <summary>f32 → Q5_K super-blocks.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<byte> q = stackalloc byte[256];
        for (int b = 0; b < x.Length / 256; b++)
        {
            var yb = y.Slice(b * BlockBytes, BlockBytes);
            ScaleMinK.Quantize(x.Slice(b * 256, 256), yb, 31, q);
            var qh = yb.Slice(16, 32);
            var qs = yb.Slice(48, 128);
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

    /// <summary>Q5_K super-blocks → f32.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y)
    {
        for (int b = 0; b < y.Length / 256; b++)
        {
            var blk = x.Slice(b * BlockBytes, BlockBytes);
            ScaleMinK.Dequantize(blk, blk.Slice(48, 128), blk.Slice(16, 32), y.Slice(b * 256, 256));
        }
    }
}
