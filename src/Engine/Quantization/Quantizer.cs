using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// Converts f32 rows to the stored weight types, bit-exact with ggml's reference (deterministic) quantizers, so
/// files we write match files llama.cpp's tools write from the same floats:
/// F16 = IEEE round-to-nearest-even; BF16 = ggml_compute_fp32_to_bf16 (nearest-even on the top 16 bits, NaN
/// kept quiet); Q8_0 = quantize_row_q8_0_ref; Q4_0 = quantize_row_q4_0_ref; Q5_0 = quantize_row_q5_0_ref (block
/// layouts in <see cref="DataType"/>).
/// Q4_K, Q5_K and Q6_K are NOT ggml's reference quantizers (those search iteratively for the best scales): a plain
/// round-to-nearest version with per-sub-block scales from the sub-block's range, enough for synthetic and test
/// models; the bytes are valid K-quant blocks any GGUF reader decodes, but differ from llama-quantize's.
/// </summary>
public static class Quantizer
{
    /// <summary>
    /// Converts <paramref name="source"/> (a whole number of blocks) into <paramref name="destination"/>, which must be
    /// exactly <c>type.RowBytes(source.Length)</c> bytes. Throws <see cref="ArgumentException"/> otherwise, or for I32.
    /// </summary>
    public static void Quantize(DataType type, ReadOnlySpan<float> source, Span<byte> destination)
    {
        if (type == DataType.I32)
            throw new ArgumentException("I32 is not a float storage type", nameof(type));
        long bytes = type.RowBytes(source.Length);
        if (destination.Length != bytes)
            throw new ArgumentException($"{source.Length} {type.Name()} elements need {bytes} bytes, destination has {destination.Length}", nameof(destination));
        switch (type)
        {
            case DataType.F32:
                MemoryMarshal.AsBytes(source).CopyTo(destination);
                break;
            case DataType.F16:
                ToF16(source, MemoryMarshal.Cast<byte, Half>(destination));
                break;
            case DataType.BF16:
                ToBF16(source, MemoryMarshal.Cast<byte, ushort>(destination));
                break;
            case DataType.Q8_0:
                QuantizeQ8_0(source, destination);
                break;
            case DataType.Q4_0:
                QuantizeQ4_0(source, destination);
                break;
            case DataType.Q5_0:
                QuantizeQ5_0(source, destination);
                break;
            case DataType.Q4_K:
                for (int b = 0; b < source.Length / 256; b++)
                    QuantizeQ4_K(source.Slice(b * 256, 256), destination.Slice(b * 144, 144));
                break;
            case DataType.Q5_K:
                for (int b = 0; b < source.Length / 256; b++)
                    QuantizeQ5_K(source.Slice(b * 256, 256), destination.Slice(b * 176, 176));
                break;
            case DataType.Q6_K:
                for (int b = 0; b < source.Length / 256; b++)
                    QuantizeQ6_K(source.Slice(b * 256, 256), destination.Slice(b * 210, 210));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "unknown data type");
        }
    }

    // .NET converts float to Half with round-to-nearest-even, like F16C's _cvtss_sh(x, 0) in ggml.
    private static void ToF16(ReadOnlySpan<float> x, Span<Half> y)
    {
        for (int i = 0; i < x.Length; i++)
            y[i] = (Half)x[i];
    }

    private static void ToBF16(ReadOnlySpan<float> x, Span<ushort> y)
    {
        for (int i = 0; i < x.Length; i++)
            y[i] = ToBFloat16(x[i]);
    }

    /// <summary>f32 → bf16 bits as ggml does: round to nearest even; NaN stays NaN (quiet bit forced).</summary>
    public static ushort ToBFloat16(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7fffffff) > 0x7f800000)
            return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }

    // Q8_0: per block of 32, d = amax / 127 and q = round(x · (1/d)), half away from zero (C roundf).
    private static void QuantizeQ8_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        if (Vector256.IsHardwareAccelerated)
            QuantizeQ8_0Vector256(x, y);
        else
            QuantizeQ8_0Scalar(x, y);
    }

    /// <summary>The plain transcription of quantize_row_q8_0_ref; the vector path must match it bit for bit.</summary>
    internal static void QuantizeQ8_0Scalar(ReadOnlySpan<float> x, Span<byte> y)
    {
        const int qk = 32, blockBytes = 34;
        for (int b = 0; b < x.Length / qk; b++)
        {
            var xb = x.Slice(b * qk, qk);
            var yb = y.Slice(b * blockBytes, blockBytes);
            float amax = 0;
            for (int j = 0; j < qk; j++)
                amax = MathF.Max(amax, MathF.Abs(xb[j]));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            BinaryPrimitives.WriteHalfLittleEndian(yb, (Half)d);
            for (int j = 0; j < qk; j++)
                yb[2 + j] = (byte)(sbyte)RoundHalfAwayFromZero(xb[j] * id);
        }
    }

    // v1: 4 × 8 lanes per block. Every step is exact or the same IEEE op as the scalar path (max, one multiply,
    // truncate, an exact subtraction), so the bytes are identical; it only removes per-element overhead.
    internal static void QuantizeQ8_0Vector256(ReadOnlySpan<float> x, Span<byte> y)
    {
        const int qk = 32, blockBytes = 34;
        ref float xr = ref MemoryMarshal.GetReference(x);
        var half = Vector256.Create(0.5f);
        var one = Vector256.Create(1.0f);
        var sign = Vector256.Create(-0.0f);
        for (int b = 0; b < x.Length / qk; b++)
        {
            nuint o = (nuint)(b * qk);
            var v0 = Vector256.LoadUnsafe(ref xr, o);
            var v1 = Vector256.LoadUnsafe(ref xr, o + 8);
            var v2 = Vector256.LoadUnsafe(ref xr, o + 16);
            var v3 = Vector256.LoadUnsafe(ref xr, o + 24);
            var m = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
            var m4 = Vector128.Max(m.GetLower(), m.GetUpper());
            float amax = MathF.Max(MathF.Max(m4[0], m4[1]), MathF.Max(m4[2], m4[3]));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            var yb = y.Slice(b * blockBytes, blockBytes);
            BinaryPrimitives.WriteHalfLittleEndian(yb, (Half)d);
            var vid = Vector256.Create(id);
            var q01 = Vector256.Narrow(Round(v0 * vid), Round(v1 * vid));
            var q23 = Vector256.Narrow(Round(v2 * vid), Round(v3 * vid));
            Vector256.Narrow(q01, q23).AsByte().CopyTo(yb[2..]);
        }

        Vector256<int> Round(Vector256<float> v)
        {
            var t = Vector256.Truncate(v);
            var away = Vector256.GreaterThanOrEqual(Vector256.Abs(v - t), half);
            return Vector256.ConvertToInt32(t + ((one | (v & sign)) & away));
        }
    }

    /// <summary>
    /// C <c>roundf</c>: nearest integer, halves away from zero. Exact for |v| &lt; 2^23 because v − trunc(v) is
    /// exact there; avoids MathF.Round(AwayFromZero), which is a slow library call on some runtimes.
    /// </summary>
    internal static float RoundHalfAwayFromZero(float v)
    {
        float t = MathF.Truncate(v);
        return MathF.Abs(v - t) >= 0.5f ? t + MathF.CopySign(1.0f, v) : t;
    }

    // Q4_0: per block of 32, the element of largest magnitude keeps its sign: d = max / -8,
    // q = min(15, trunc(x · (1/d) + 8.5)); byte j holds element j (low nibble) and element j + 16 (high nibble).
    private static void QuantizeQ4_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        const int qk = 32, blockBytes = 18;
        for (int b = 0; b < x.Length / qk; b++)
        {
            var xb = x.Slice(b * qk, qk);
            var yb = y.Slice(b * blockBytes, blockBytes);
            float max = SignedAbsMax(xb);
            float d = max / -8;
            float id = d != 0 ? 1.0f / d : 0.0f;
            BinaryPrimitives.WriteHalfLittleEndian(yb, (Half)d);
            for (int j = 0; j < qk / 2; j++)
            {
                // C's (int8_t) cast truncates toward zero; the value is in [0, 17) here.
                int q0 = Math.Min(15, (int)(xb[j] * id + 8.5f));
                int q1 = Math.Min(15, (int)(xb[j + qk / 2] * id + 8.5f));
                yb[2 + j] = (byte)(q0 | (q1 << 4));
            }
        }
    }

    // The element of largest magnitude, with its sign (the first of equals), as ggml's q4_0/q5_0 quantizers pick it.
    private static float SignedAbsMax(ReadOnlySpan<float> xb)
    {
        float amax = 0, max = 0;
        foreach (float v in xb)
        {
            if (amax < MathF.Abs(v))
            {
                amax = MathF.Abs(v);
                max = v;
            }
        }
        return max;
    }

    // Q5_0: as Q4_0 with 32 levels: d = max / -16, q = min(31, trunc(x · (1/d) + 16.5)); the low 4 bits go in the
    // nibbles as Q4_0's, bit 4 of element j goes to bit j of the little-endian uint32 qh.
    private static void QuantizeQ5_0(ReadOnlySpan<float> x, Span<byte> y)
    {
        const int qk = 32, blockBytes = 22;
        for (int b = 0; b < x.Length / qk; b++)
        {
            var xb = x.Slice(b * qk, qk);
            var yb = y.Slice(b * blockBytes, blockBytes);
            float max = SignedAbsMax(xb);
            float d = max / -16;
            float id = d != 0 ? 1.0f / d : 0.0f;
            BinaryPrimitives.WriteHalfLittleEndian(yb, (Half)d);
            uint qh = 0;
            for (int j = 0; j < qk / 2; j++)
            {
                // C's (int8_t) cast truncates toward zero; the value is in [0, 33) here.
                int q0 = Math.Min(31, (int)(xb[j] * id + 16.5f));
                int q1 = Math.Min(31, (int)(xb[j + qk / 2] * id + 16.5f));
                yb[6 + j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
                qh |= (uint)(q0 >> 4) << j;
                qh |= (uint)(q1 >> 4) << (j + qk / 2);
            }
            BinaryPrimitives.WriteUInt32LittleEndian(yb[2..], qh);
        }
    }

    // Q4_K, one super-block: sub-block j spans [lo_j, hi_j] with lo_j = min(0, min x) so the stored min m_j is ≥ 0;
    // its step is (hi_j − lo_j)/15. d and dmin are the largest step and min over 63 (6-bit codes), rounded to f16
    // first so the 6-bit codes and the quants are chosen against the scales a reader will actually use.
    private static void QuantizeQ4_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<byte> q = stackalloc byte[256];
        ScalesMinsK(x, y, 15, q);
        var qs = y.Slice(16, 128);
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
                qs[32 * g + l] = (byte)(q[64 * g + l] | (q[64 * g + 32 + l] << 4));
    }

    // Q5_K, one super-block: Q4_K's scheme with 31 steps per sub-block; the low 4 bits of each quant go where Q4_K's
    // nibble goes, bit 4 of element 64g + l to bit 2g of qh[l] and of element 64g + 32 + l to bit 2g + 1.
    private static void QuantizeQ5_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<byte> q = stackalloc byte[256];
        ScalesMinsK(x, y, 31, q);
        var qh = y.Slice(16, 32);
        var qs = y.Slice(48, 128);
        qh.Clear();
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
            {
                int lo = q[64 * g + l], hi = q[64 * g + 32 + l];
                qs[32 * g + l] = (byte)((lo & 0x0F) | ((hi & 0x0F) << 4));
                qh[l] |= (byte)(((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1)));
            }
    }

    // The shared part of Q4_K and Q5_K: writes d, dmin and the 12 packed scale bytes of y, and the quants (0..levels)
    // of the 256 elements of x into q in element order.
    private static void ScalesMinsK(ReadOnlySpan<float> x, Span<byte> y, int levels, Span<byte> q)
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
            m[j] = dmin > 0 ? Math.Clamp((int)RoundHalfAwayFromZero(lows[j] / dmin), 0, 63) : 0;
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
                q[32 * j + i] = (byte)Math.Clamp((int)RoundHalfAwayFromZero((x[32 * j + i] + mn) * inv), 0, levels);
        }
    }

    // Q6_K, one super-block: group g of 16 gets the step amax_g / 31 (codes q − 32 in [−32, 31]); d is the largest
    // step over 127 (int8 scales), rounded to f16 before the scales and quants are chosen against it.
    private static void QuantizeQ6_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<float> step = stackalloc float[16];
        float maxStep = 0;
        for (int g = 0; g < 16; g++)
        {
            float amax = 0;
            foreach (float v in x.Slice(16 * g, 16))
                amax = MathF.Max(amax, MathF.Abs(v));
            step[g] = amax / 31;
            maxStep = MathF.Max(maxStep, step[g]);
        }
        Half dh = (Half)(maxStep / 127);
        float d = (float)dh;
        BinaryPrimitives.WriteHalfLittleEndian(y[208..], dh);
        Span<byte> q = stackalloc byte[256];
        for (int g = 0; g < 16; g++)
        {
            int sc = d > 0 ? Math.Clamp((int)MathF.Ceiling(step[g] / d), 0, 127) : 0;
            y[192 + g] = (byte)(sbyte)sc;
            float s = d * sc;
            float inv = s > 0 ? 1 / s : 0;
            for (int i = 0; i < 16; i++)
                q[16 * g + i] = (byte)(Math.Clamp((int)RoundHalfAwayFromZero(x[16 * g + i] * inv), -32, 31) + 32);
        }
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++)
            {
                int e = 128 * h + l;
                byte q1 = q[e], q2 = q[e + 32], q3 = q[e + 64], q4 = q[e + 96];
                y[64 * h + l] = (byte)((q1 & 0x0F) | ((q3 & 0x0F) << 4));
                y[64 * h + l + 32] = (byte)((q2 & 0x0F) | ((q4 & 0x0F) << 4));
                y[128 + 32 * h + l] = (byte)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
    }
}
