using System.Buffers.Binary;

namespace Serving.Engine.Quantization;

/// <summary>
/// The shared part of the "scale and min" K-quants (Q4_K, Q5_K; layouts in <see cref="Serving.Abstractions.DataType"/>),
/// one super-block at a time:
/// super-blocks of 256 = 8 sub-blocks of 32, f16 d and dmin at bytes 0..3, 6-bit scales and mins packed in bytes
/// 4..15, value = d·sc_j·q − dmin·m_j. Only where the quants are stored differs between the two.
/// </summary>
internal static class ScaleMinK
{
    /// <summary>
    /// The 6-bit scale and min of sub-block <paramref name="j"/> (0..7) from the 12 packed bytes (ggml's
    /// get_scale_min_k4): sub-blocks 0–3 use the low 6 bits of bytes j and j+4; sub-blocks 4–7 take their low 4 bits
    /// from byte j+4's nibbles and their top 2 bits from the spare top bits of bytes j−4 and j.
    /// </summary>
    public static (int Scale, int Min) ScaleMin(ReadOnlySpan<byte> scales, int j)
        => j < 4
            ? (scales[j] & 63, scales[j + 4] & 63)
            : ((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4), (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));

    /// <summary>
    /// Quantizes one super-block x [256]: writes d, dmin and the 12 packed scale bytes of y, and the quants (0..levels)
    /// of the 256 elements into q in element order. Sub-block j spans [lo_j, hi_j] with lo_j = min(0, min x) so the
    /// stored min m_j is ≥ 0; its step is (hi_j − lo_j)/levels. d and dmin are the largest step and min over 63 (6-bit
    /// codes), rounded to f16 first so the 6-bit codes and the quants are chosen against the scales a reader will use.
    /// </summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y, int levels, Span<byte> q)
    {
        Span<float> step = stackalloc float[8];
        Span<float> lows = stackalloc float[8];
        for (int j = 0; j < 8; j++)
        {
            float lo = 0, hi = 0;
            foreach (float v in x.Slice(32 * j, 32))
            {
                lo = MathF.Min(lo, v);
                hi = MathF.Max(hi, v);
            }
            step[j] = (hi - lo) / levels;
            lows[j] = -lo;
        }
        float maxStep = 0, maxMin = 0;
        for (int j = 0; j < 8; j++)
        {
            maxStep = MathF.Max(maxStep, step[j]);
            maxMin = MathF.Max(maxMin, lows[j]);
        }
        Half dh = (Half)(maxStep / 63), dminh = (Half)(maxMin / 63);
        float d = (float)dh, dmin = (float)dminh;
        BinaryPrimitives.WriteHalfLittleEndian(y, dh);
        BinaryPrimitives.WriteHalfLittleEndian(y[2..], dminh);
        Span<int> sc = stackalloc int[8];
        Span<int> m = stackalloc int[8];
        for (int j = 0; j < 8; j++)
        {
            // Round the step up so the sub-block's range still fits in `levels` steps after the 6-bit rounding.
            sc[j] = d > 0 ? Math.Clamp((int)MathF.Ceiling(step[j] / d), 0, 63) : 0;
            m[j] = dmin > 0 ? Math.Clamp((int)Quantizer.RoundHalfAwayFromZero(lows[j] / dmin), 0, 63) : 0;
        }
        var scales = y.Slice(4, 12);
        for (int j = 0; j < 4; j++)
        {
            scales[j] = (byte)(sc[j] | ((sc[j + 4] >> 4) << 6));
            scales[j + 4] = (byte)(m[j] | ((m[j + 4] >> 4) << 6));
            scales[j + 8] = (byte)((sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4));
        }
        for (int j = 0; j < 8; j++)
        {
            float s = d * sc[j], mn = dmin * m[j];
            float inv = s > 0 ? 1 / s : 0;
            for (int i = 0; i < 32; i++)
                q[32 * j + i] = (byte)Math.Clamp((int)Quantizer.RoundHalfAwayFromZero((x[32 * j + i] + mn) * inv), 0, levels);
        }
    }

    /// <summary>
    /// Dequantizes one super-block: the low nibbles in <paramref name="qs"/>, and a fifth bit per quant in
    /// <paramref name="qh"/> when it is not empty (bits 2g and 2g + 1 of qh[l] for the low and high nibbles of chunk g).
    /// y = d·sc_j·q − dmin·m_j, the two products formed in f32 as ggml does.
    /// </summary>
    public static void Dequantize(ReadOnlySpan<byte> blk, ReadOnlySpan<byte> qs, ReadOnlySpan<byte> qh, Span<float> y)
    {
        float d = (float)BinaryPrimitives.ReadHalfLittleEndian(blk);
        float dmin = (float)BinaryPrimitives.ReadHalfLittleEndian(blk[2..]);
        var scales = blk.Slice(4, 12);
        for (int g = 0; g < 4; g++)
        {
            (int sc0, int m0) = ScaleMin(scales, 2 * g);
            (int sc1, int m1) = ScaleMin(scales, 2 * g + 1);
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
}
