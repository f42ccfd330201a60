using System.Buffers.Binary;
using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// Converts f32 rows to the stored weight formats (the codecs of <see cref="WeightFormats"/>), bit-exact with ggml's
/// reference (deterministic) quantizers where ggml has one, so files we write match files llama.cpp's tools write from
/// the same floats: F16 round-to-nearest-even, BF16 ggml_compute_fp32_to_bf16, Q8_0/Q4_0/Q5_0 quantize_row_*_ref.
/// Q4_K, Q5_K and Q6_K are plain round-to-nearest versions (see <see cref="Q4_KCodec"/>): valid blocks any GGUF
/// reader decodes, but not llama-quantize's bytes.
/// </summary>
public static class Quantizer
{
    /// <summary>
    /// Converts <paramref name="source"/> (a whole number of blocks) into <paramref name="destination"/>, which must be
    /// exactly <c>type.RowBytes(source.Length)</c> bytes. Throws <see cref="ArgumentException"/> otherwise, or when
    /// <paramref name="type"/> is not a weight format (I32).
    /// </summary>
    public static void Quantize(DataType type, ReadOnlySpan<float> source, Span<byte> destination)
        => WeightFormats.Get(type).Quantize(source, destination);

    /// <summary>
    /// C <c>roundf</c>: nearest integer, halves away from zero. Exact for |v| &lt; 2^23 because v − trunc(v) is
    /// exact there; avoids MathF.Round(AwayFromZero), which is a slow library call on some runtimes.
    /// </summary>
    internal static float RoundHalfAwayFromZero(float v)
    {
        float t = MathF.Truncate(v);
        return MathF.Abs(v - t) >= 0.5f ? t + MathF.CopySign(1.0f, v) : t;
    }

    /// <summary>
    /// The scale of a q4_0/q5_0 block, as ggml's quantizers pick it: d = max / −<paramref name="levels"/>, where max is
    /// the element of largest magnitude with its sign (the first of equals). Writes d as f16 at the start of
    /// <paramref name="block"/> and returns 1/d (0 when d is 0), the factor the quants are computed with.
    /// </summary>
    internal static float WriteSignedScale(ReadOnlySpan<float> x, Span<byte> block, int levels)
    {
        float amax = 0, max = 0;
        foreach (float v in x)
        {
            if (amax < MathF.Abs(v))
            {
                amax = MathF.Abs(v);
                max = v;
            }
        }
        float d = max / -levels;
        float id = d != 0 ? 1.0f / d : 0.0f;
        BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
        return id;
    }
}
