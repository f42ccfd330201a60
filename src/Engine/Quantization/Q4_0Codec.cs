using System.Buffers.Binary;
using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// Q4_0 blocks (layout in <see cref="DataType"/>), quantize_row_q4_0_ref bit for bit: the element of largest magnitude
/// keeps its sign, d = max / −8, q = min(15, trunc(x · (1/d) + 8.5)); byte j holds element j (low nibble) and element
/// j + 16 (high nibble); value = (q − 8) · d.
/// </summary>
public static class Q4_0Codec
{
    /// <summary>f32 → Q4_0 blocks.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y) => Blocks.Quantize(DataType.Q4_0, x, y, QuantizeBlock);

    /// <summary>Q4_0 blocks → f32.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y) => Blocks.Dequantize(DataType.Q4_0, x, y, DequantizeBlock);

    private static void QuantizeBlock(ReadOnlySpan<float> x, Span<byte> block)
    {
        float id = Quantizer.WriteSignedScale(x, block, 8);
        for (int j = 0; j < 16; j++)
        {
            // C's (int8_t) cast truncates toward zero; the value is in [0, 17) here.
            int q0 = Math.Min(15, (int)(x[j] * id + 8.5f));
            int q1 = Math.Min(15, (int)(x[j + 16] * id + 8.5f));
            block[2 + j] = (byte)(q0 | (q1 << 4));
        }
    }

    private static void DequantizeBlock(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
        for (int j = 0; j < 16; j++)
        {
            y[j] = ((block[2 + j] & 0x0F) - 8) * d;
            y[j + 16] = ((block[2 + j] >> 4) - 8) * d;
        }
    }
}
