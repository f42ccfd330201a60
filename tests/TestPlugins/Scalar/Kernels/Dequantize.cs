using System.Buffers.Binary;
using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>
/// One GGUF row → f32, per the block layouts in docs/backends.md §5 (and <see cref="DataType"/>'s docs). Each value is
/// formed in f32 the way the layouts state it, so the non-K types are exact and the K-quants one rounding away.
/// </summary>
internal static class Dequantize
{
    /// <summary>Decodes <paramref name="row"/> (whole blocks of <paramref name="type"/>) into <paramref name="y"/>.</summary>
    public static void Row(DataType type, ReadOnlySpan<byte> row, Span<float> y)
    {
        int bs = type.BlockSize(), bb = type.BlockBytes();
        for (int b = 0; b < y.Length / bs; b++)
        {
            ReadOnlySpan<byte> blk = row.Slice(b * bb, bb);
            Span<float> o = y.Slice(b * bs, bs);
            switch (type)
            {
                case DataType.F32: o[0] = BinaryPrimitives.ReadSingleLittleEndian(blk); break;
                case DataType.F16: o[0] = (float)BinaryPrimitives.ReadHalfLittleEndian(blk); break;
                case DataType.BF16: o[0] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(blk) << 16); break;
                case DataType.Q8_0: Q8_0(blk, o); break;
                case DataType.Q4_0: Q4_0(blk, o); break;
                case DataType.Q5_0: Q5_0(blk, o); break;
                case DataType.Q4_K: Q4_K(blk, o, withHighBits: false); break;
                case DataType.Q5_K: Q4_K(blk, o, withHighBits: true); break;
                case DataType.Q6_K: Q6_K(blk, o); break;
                default: throw new ArgumentException($"no decoder for {type.Name()}", nameof(type));
            }
        }
    }

    private static float D(ReadOnlySpan<byte> b) => (float)BinaryPrimitives.ReadHalfLittleEndian(b);

    // { f16 d; int8 qs[32] }: value = qs[j]·d.
    private static void Q8_0(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = D(b);
        for (int j = 0; j < 32; j++) y[j] = (sbyte)b[2 + j] * d;
    }

    // { f16 d; uint8 qs[16] }: element j low nibble of qs[j], j + 16 the high nibble; value = (q − 8)·d.
    private static void Q4_0(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = D(b);
        for (int j = 0; j < 16; j++)
        {
            y[j] = ((b[2 + j] & 0x0F) - 8) * d;
            y[j + 16] = ((b[2 + j] >> 4) - 8) * d;
        }
    }

    // { f16 d; uint32 qh (LE); uint8 qs[16] }: Q4_0's nibbles plus bit j / j + 16 of qh as the fifth bit; (q − 16)·d.
    private static void Q5_0(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = D(b);
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(b[2..]);
        for (int j = 0; j < 16; j++)
        {
            int lo = (b[6 + j] & 0x0F) | (int)((qh >> j) & 1) << 4;
            int hi = (b[6 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (lo - 16) * d;
            y[j + 16] = (hi - 16) * d;
        }
    }

    // { f16 d; f16 dmin; uint8 scales[12]; [uint8 qh[32] (Q5_K)]; uint8 qs[128] }: value = d·sc_j·q − dmin·m_j.
    private static void Q4_K(ReadOnlySpan<byte> b, Span<float> y, bool withHighBits)
    {
        float d = D(b), dmin = D(b[2..]);
        ReadOnlySpan<byte> scales = b.Slice(4, 12);
        ReadOnlySpan<byte> qh = withHighBits ? b.Slice(16, 32) : default;
        ReadOnlySpan<byte> qs = b.Slice(withHighBits ? 48 : 16, 128);
        for (int i = 0; i < 4; i++)
        {
            for (int half = 0; half < 2; half++)
            {
                int j = 2 * i + half; // sub-block: low nibbles of qs[32i..] are sub-block 2i, high nibbles 2i + 1
                (int sc, int m) = ScaleMin(scales, j);
                float ds = d * sc, mn = dmin * m;
                for (int l = 0; l < 32; l++)
                {
                    int q = half == 0 ? qs[32 * i + l] & 0x0F : qs[32 * i + l] >> 4;
                    if (withHighBits) q |= ((qh[l] >> j) & 1) << 4; // bit 2i (low nibble) or 2i + 1 (high nibble)
                    y[32 * j + l] = ds * q - mn;
                }
            }
        }
    }

    // 6-bit scale and min of sub-block j from the 12 packed bytes.
    private static (int Scale, int Min) ScaleMin(ReadOnlySpan<byte> s, int j)
        => j < 4
            ? (s[j] & 63, s[j + 4] & 63)
            : ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4));

    // { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d }: value = d·scales[e/16]·(q − 32).
    private static void Q6_K(ReadOnlySpan<byte> b, Span<float> y)
    {
        ReadOnlySpan<byte> ql = b[..128], qh = b.Slice(128, 64), sc = b.Slice(192, 16);
        float d = D(b[208..]);
        for (int h = 0; h < 2; h++)
        {
            for (int l = 0; l < 32; l++)
            {
                byte lo0 = ql[64 * h + l], lo1 = ql[64 * h + l + 32], hb = qh[32 * h + l];
                int q0 = (lo0 & 0x0F) | ((hb & 3) << 4);
                int q1 = (lo1 & 0x0F) | (((hb >> 2) & 3) << 4);
                int q2 = (lo0 >> 4) | (((hb >> 4) & 3) << 4);
                int q3 = (lo1 >> 4) | (((hb >> 6) & 3) << 4);
                int e = 128 * h + l;
                y[e] = d * (sbyte)sc[e / 16] * (q0 - 32);
                y[e + 32] = d * (sbyte)sc[(e + 32) / 16] * (q1 - 32);
                y[e + 64] = d * (sbyte)sc[(e + 64) / 16] * (q2 - 32);
                y[e + 96] = d * (sbyte)sc[(e + 96) / 16] * (q3 - 32);
            }
        }
    }
}
