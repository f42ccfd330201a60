using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// Converts f32 rows to the stored weight types, bit-exact with ggml's reference (deterministic) quantizers, so
/// files we write match files llama.cpp's tools write from the same floats:
/// F16 = IEEE round-to-nearest-even; BF16 = ggml_compute_fp32_to_bf16 (nearest-even on the top 16 bits, NaN
/// kept quiet); Q8_0 = quantize_row_q8_0_ref; Q4_0 = quantize_row_q4_0_ref (block layouts in <see cref="DataType"/>).
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
            float amax = 0, max = 0;
            for (int j = 0; j < qk; j++)
            {
                float v = xb[j];
                if (amax < MathF.Abs(v))
                {
                    amax = MathF.Abs(v);
                    max = v;
                }
            }
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
}
