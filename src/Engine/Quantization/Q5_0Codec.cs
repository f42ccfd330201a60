using System.Buffers.Binary;
using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// Q5_0 blocks (layout in <see cref="DataType"/>), quantize_row_q5_0_ref bit for bit: as Q4_0 with 32 levels,
/// d = max / −16, q = min(31, trunc(x · (1/d) + 16.5)); the low 4 bits go in the nibbles as Q4_0's, bit 4 of element j
/// to bit j of the little-endian uint32 qh; value = (q − 16) · d.
/// </summary>
public static class Q5_0Codec
{
    /// <summary>f32 → Q5_0 blocks.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y) => Blocks.Quantize(DataType.Q5_0, x, y, QuantizeBlock);

    /// <summary>Q5_0 blocks → f32.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y) => Blocks.Dequantize(DataType.Q5_0, x, y, DequantizeBlock);

    private static void QuantizeBlock(ReadOnlySpan<float> x, Span<byte> block)
    {
        float id = Quantizer.WriteSignedScale(x, block, 16);
        uint qh = 0;
        for (int j = 0; j < 16; j++)
        {
            // C's (int8_t) cast truncates toward zero; the value is in [0, 33) here.
            int q0 = Math.Min(31, (int)(x[j] * id + 16.5f));
            int q1 = Math.Min(31, (int)(x[j + 16] * id + 16.5f));
            block[6 + j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint)(q0 >> 4) << j;
            qh |= (uint)(q1 >> 4) << (j + 16);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(block[2..], qh);
    }

    private static void DequantizeBlock(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(block[2..]);
        for (int j = 0; j < 16; j++)
        {
            int q0 = (block[6 + j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
            int q1 = (block[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            y[j] = (q0 - 16) * d;
            y[j + 16] = (q1 - 16) * d;
        }
    }
}
