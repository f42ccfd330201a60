using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// Scalar reference conversion of stored rows back to f32 (ggml's dequantize_row_* semantics). Meant for
/// host-side checks and tests, not for the hot path.
/// </summary>
public static class Dequantizer
{
    /// <summary>
    /// Expands <paramref name="source"/> (exactly <c>type.RowBytes(destination.Length)</c> bytes of
    /// <paramref name="type"/>) into <paramref name="destination"/>. I32 is converted value by value.
    /// </summary>
    public static void DequantizeRow(DataType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        long bytes = type.RowBytes(destination.Length);
        if (source.Length != bytes)
            throw new ArgumentException($"{destination.Length} {type.Name()} elements need {bytes} bytes, source has {source.Length}", nameof(source));
        switch (type)
        {
            case DataType.F32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case DataType.I32:
                var ints = MemoryMarshal.Cast<byte, int>(source);
                for (int i = 0; i < ints.Length; i++)
                    destination[i] = ints[i];
                break;
            case DataType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(source);
                for (int i = 0; i < halves.Length; i++)
                    destination[i] = (float)halves[i];
                break;
            case DataType.BF16:
                var bf = MemoryMarshal.Cast<byte, ushort>(source);
                for (int i = 0; i < bf.Length; i++)
                    destination[i] = FromBFloat16(bf[i]);
                break;
            case DataType.Q8_0:
                for (int b = 0; b < destination.Length / 32; b++)
                {
                    var blk = source.Slice(b * 34, 34);
                    float d = (float)BinaryPrimitives.ReadHalfLittleEndian(blk);
                    for (int j = 0; j < 32; j++)
                        destination[b * 32 + j] = (sbyte)blk[2 + j] * d;
                }
                break;
            case DataType.Q4_0:
                for (int b = 0; b < destination.Length / 32; b++)
                {
                    var blk = source.Slice(b * 18, 18);
                    float d = (float)BinaryPrimitives.ReadHalfLittleEndian(blk);
                    for (int j = 0; j < 16; j++)
                    {
                        destination[b * 32 + j] = ((blk[2 + j] & 0x0F) - 8) * d;
                        destination[b * 32 + j + 16] = ((blk[2 + j] >> 4) - 8) * d;
                    }
                }
                break;
            case DataType.Q5_0:
                for (int b = 0; b < destination.Length / 32; b++)
                {
                    var blk = source.Slice(b * 22, 22);
                    float d = (float)BinaryPrimitives.ReadHalfLittleEndian(blk);
                    uint qh = BinaryPrimitives.ReadUInt32LittleEndian(blk[2..]);
                    for (int j = 0; j < 16; j++)
                    {
                        int q0 = (blk[6 + j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
                        int q1 = (blk[6 + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
                        destination[b * 32 + j] = (q0 - 16) * d;
                        destination[b * 32 + j + 16] = (q1 - 16) * d;
                    }
                }
                break;
            case DataType.Q4_K:
                for (int b = 0; b < destination.Length / 256; b++)
                    DequantizeQ4_K(source.Slice(b * 144, 144), destination.Slice(b * 256, 256));
                break;
            case DataType.Q5_K:
                for (int b = 0; b < destination.Length / 256; b++)
                    DequantizeQ5_K(source.Slice(b * 176, 176), destination.Slice(b * 256, 256));
                break;
            case DataType.Q6_K:
                for (int b = 0; b < destination.Length / 256; b++)
                    DequantizeQ6_K(source.Slice(b * 210, 210), destination.Slice(b * 256, 256));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "unknown data type");
        }
    }

    /// <summary>
    /// The 6-bit scale and min of sub-block <paramref name="j"/> (0..7) of a Q4_K super-block from its 12 packed
    /// bytes (ggml's get_scale_min_k4): sub-blocks 0–3 use the low 6 bits of bytes j and j+4; sub-blocks 4–7 take
    /// their low 4 bits from byte j+4's nibbles and their top 2 bits from the spare top bits of bytes j−4 and j.
    /// </summary>
    public static (int Scale, int Min) Q4_KScaleMin(ReadOnlySpan<byte> scales, int j)
        => j < 4
            ? (scales[j] & 63, scales[j + 4] & 63)
            : ((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4), (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));

    // One Q4_K super-block (layout in DataType): y = d·sc_j·q − dmin·m_j, the two products formed in f32 as ggml does.
    private static void DequantizeQ4_K(ReadOnlySpan<byte> blk, Span<float> y) => DequantizeScaleMinK(blk, blk.Slice(16, 128), default, y);

    // One Q5_K super-block (layout in DataType): Q4_K's formula with a fifth bit from qh, bits 2g and 2g + 1 of qh[l]
    // for the low and high nibbles of chunk g.
    private static void DequantizeQ5_K(ReadOnlySpan<byte> blk, Span<float> y) => DequantizeScaleMinK(blk, blk.Slice(48, 128), blk.Slice(16, 32), y);

    // The scale-and-min K-quants: d, dmin and the packed 6-bit scales and mins at bytes 0..15, the low nibbles in qs,
    // and a fifth bit per quant in qh when it is not empty.
    private static void DequantizeScaleMinK(ReadOnlySpan<byte> blk, ReadOnlySpan<byte> qs, ReadOnlySpan<byte> qh, Span<float> y)
    {
        float d = (float)BinaryPrimitives.ReadHalfLittleEndian(blk);
        float dmin = (float)BinaryPrimitives.ReadHalfLittleEndian(blk[2..]);
        var scales = blk.Slice(4, 12);
        for (int g = 0; g < 4; g++)
        {
            (int sc0, int m0) = Q4_KScaleMin(scales, 2 * g);
            (int sc1, int m1) = Q4_KScaleMin(scales, 2 * g + 1);
            float d0 = d * sc0, min0 = dmin * m0, d1 = d * sc1, min1 = dmin * m1;
            for (int l = 0; l < 32; l++)
            {
                byte q = qs[32 * g + l];
                int h0 = qh.IsEmpty ? 0 : ((qh[l] >> (2 * g)) & 1) << 4, h1 = qh.IsEmpty ? 0 : ((qh[l] >> (2 * g + 1)) & 1) << 4;
                y[64 * g + l] = d0 * ((q & 0x0F) | h0) - min0;
                y[64 * g + 32 + l] = d1 * ((q >> 4) | h1) - min1;
            }
        }
    }

    // One Q6_K super-block (layout in DataType): y = d·scales[e/16]·(q − 32).
    private static void DequantizeQ6_K(ReadOnlySpan<byte> blk, Span<float> y)
    {
        var ql = blk[..128];
        var qh = blk.Slice(128, 64);
        var scales = MemoryMarshal.Cast<byte, sbyte>(blk.Slice(192, 16));
        float d = (float)BinaryPrimitives.ReadHalfLittleEndian(blk[208..]);
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++)
            {
                int e = 128 * h + l;
                byte lo0 = ql[64 * h + l], lo1 = ql[64 * h + l + 32], hi = qh[32 * h + l];
                y[e] = d * scales[e / 16] * (((lo0 & 0x0F) | ((hi & 3) << 4)) - 32);
                y[e + 32] = d * scales[(e + 32) / 16] * (((lo1 & 0x0F) | (((hi >> 2) & 3) << 4)) - 32);
                y[e + 64] = d * scales[(e + 64) / 16] * (((lo0 >> 4) | (((hi >> 4) & 3) << 4)) - 32);
                y[e + 96] = d * scales[(e + 96) / 16] * (((lo1 >> 4) | (((hi >> 6) & 3) << 4)) - 32);
            }
    }

    /// <summary>bf16 bits → f32 (exact: the bits become the top half of an f32).</summary>
    public static float FromBFloat16(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
}
