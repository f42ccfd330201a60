using System.Buffers.Binary;

namespace Serving.Engine.Quantization;

/// <summary>
/// Q4_0 rows (layout in <see cref="Serving.Abstractions.DataType"/>), quantize_row_q4_0_ref bit for bit: per block of
/// 32 the element of largest magnitude keeps its sign, d = max / −8, q = min(15, trunc(x · (1/d) + 8.5)); byte j
/// holds element j (low nibble) and element j + 16 (high nibble); value = (q − 8) · d.
/// </summary>
public static class Q4_0Codec
{
    private const int Qk = 32, BlockBytes = 18;

    /// <summary>f32 → Q4_0 blocks.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / Qk; b++)
        {
            var xb = x.Slice(b * Qk, Qk);
            var yb = y.Slice(b * BlockBytes, BlockBytes);
            float max = Quantizer.SignedAbsMax(xb);
            float d = max / -8;
            float id = d != 0 ? 1.0f / d : 0.0f;
            BinaryPrimitives.WriteHalfLittleEndian(yb, (Half)d);
            for (int j = 0; j < Qk / 2; j++)
            {
                // C's (int8_t) cast truncates toward zero; the value is in [0, 17) here.
                int q0 = Math.Min(15, (int)(xb[j] * id + 8.5f));
                int q1 = Math.Min(15, (int)(xb[j + Qk / 2] * id + 8.5f));
                yb[2 + j] = (byte)(q0 | (q1 << 4));
            }
        }
    }

    /// <summary>Q4_0 blocks → f32.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y)
    {
        for (int b = 0; b < y.Length / Qk; b++)
        {
            var blk = x.Slice(b * BlockBytes, BlockBytes);
            float d = (float)BinaryPrimitives.ReadHalfLittleEndian(blk);
            for (int j = 0; j < Qk / 2; j++)
            {
                y[b * Qk + j] = ((blk[2 + j] & 0x0F) - 8) * d;
                y[b * Qk + j + Qk / 2] = ((blk[2 + j] >> 4) - 8) * d;
            }
        }
    }
}
