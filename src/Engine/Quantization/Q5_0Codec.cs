using System.Buffers.Binary;

namespace Serving.Engine.Quantization;

/// <summary>
/// Q5_0 rows (layout in <see cref="Serving.Abstractions.DataType"/>), quantize_row_q5_0_ref bit for bit: as Q4_0 with
/// 32 levels, d = max / −16, q = min(31, trunc(x · (1/d) + 16.5)); the low 4 bits go in the nibbles as Q4_0's, bit 4
/// of element j to bit j of the little-endian uint32 qh; value = (q − 16) · d.
/// </summary>
public static class Q5_0Codec
{
    private const int Qk = 32, BlockBytes = 22;

    /// <summary>f32 → Q5_0 blocks.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / Qk; b++)
        {
            var xb = x.Slice(b * Qk, Qk);
            var yb = y.Slice(b * BlockBytes, BlockBytes);
            float max = Quantizer.SignedAbsMax(xb);
            float d = max / -16;
            float id = d != 0 ? 1.0f / d : 0.0f;
            BinaryPrimitives.WriteHalfLittleEndian(yb, (Half)d);
            uint qh = 0;
            for (int j = 0; j < Qk / 2; j++)
            {
                // C's (int8_t) cast truncates toward zero; the value is in [0, 33) here.
                int q0 = Math.Min(31, (int)(xb[j] * id + 16.5f));
                int q1 = Math.Min(31, (int)(xb[j + Qk / 2] * id + 16.5f));
                yb[6 + j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
                qh |= (uint)(q0 >> 4) << j;
                qh |= (uint)(q1 >> 4) << (j + Qk / 2);
            }
            BinaryPrimitives.WriteUInt32LittleEndian(yb[2..], qh);
        }
    }

    /// <summary>Q5_0 blocks → f32.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y)
    {
        for (int b = 0; b < y.Length / Qk; b++)
        {
            var blk = x.Slice(b * BlockBytes, BlockBytes);
            float d = (float)BinaryPrimitives.ReadHalfLittleEndian(blk);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(blk[2..]);
            for (int j = 0; j < Qk / 2; j++)
            {
                int q0 = (blk[6 + j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
                int q1 = (blk[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
                y[b * Qk + j] = (q0 - 16) * d;
                y[b * Qk + j + Qk / 2] = (q1 - 16) * d;
            }
        }
    }
}
