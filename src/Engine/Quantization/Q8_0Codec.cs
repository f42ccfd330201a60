using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// Q8_0 blocks (layout in <see cref="DataType"/>): per block of 32, d = amax / 127 and
/// q = round(x · (1/d)), half away from zero (C roundf) — quantize_row_q8_0_ref bit for bit; value = d · q.
/// </summary>
public static class Q8_0Codec
{
    private const int Qk = 32, BlockBytes = 34;

    /// <summary>f32 → Q8_0 blocks.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        if (Vector256.IsHardwareAccelerated)
            QuantizeVector256(x, y);
        else
            QuantizeScalar(x, y);
    }

    /// <summary>The plain transcription of quantize_row_q8_0_ref; the vector path must match it bit for bit.</summary>
    internal static void QuantizeScalar(ReadOnlySpan<float> x, Span<byte> y) => Blocks.Quantize(DataType.Q8_0, x, y, QuantizeBlock);

    private static void QuantizeBlock(ReadOnlySpan<float> x, Span<byte> block)
    {
        float amax = 0;
        for (int j = 0; j < Qk; j++)
            amax = MathF.Max(amax, MathF.Abs(x[j]));
        float d = amax / 127;
        float id = d != 0 ? 1.0f / d : 0.0f;
        BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
        for (int j = 0; j < Qk; j++)
            block[2 + j] = (byte)(sbyte)Quantizer.RoundHalfAwayFromZero(x[j] * id);
    }

    // v1: 4 × 8 lanes per block. Every step is exact or the same IEEE op as the scalar path (max, one multiply,
    // truncate, an exact subtraction), so the bytes are identical; it only removes per-element overhead.
    internal static void QuantizeVector256(ReadOnlySpan<float> x, Span<byte> y)
    {
        ref float xr = ref MemoryMarshal.GetReference(x);
        var half = Vector256.Create(0.5f);
        var one = Vector256.Create(1.0f);
        var sign = Vector256.Create(-0.0f);
        for (int b = 0; b < x.Length / Qk; b++)
        {
            nuint o = (nuint)(b * Qk);
            var v0 = Vector256.LoadUnsafe(ref xr, o);
            var v1 = Vector256.LoadUnsafe(ref xr, o + 8);
            var v2 = Vector256.LoadUnsafe(ref xr, o + 16);
            var v3 = Vector256.LoadUnsafe(ref xr, o + 24);
            var m = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
            var m4 = Vector128.Max(m.GetLower(), m.GetUpper());
            float amax = MathF.Max(MathF.Max(m4[0], m4[1]), MathF.Max(m4[2], m4[3]));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            var yb = y.Slice(b * BlockBytes, BlockBytes);
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

    /// <summary>Q8_0 blocks → f32: d · q.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y) => Blocks.Dequantize(DataType.Q8_0, x, y, DequantizeBlock);

    private static void DequantizeBlock(ReadOnlySpan<byte> block, Span<float> y)
    {
        float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
        for (int j = 0; j < Qk; j++)
            y[j] = (sbyte)block[2 + j] * d;
    }
}
