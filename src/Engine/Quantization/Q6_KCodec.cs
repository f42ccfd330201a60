using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// Q6_K super-blocks (layout in <see cref="DataType"/>). The quantizer is plain round-to-nearest (not
/// ggml's iterative search, see <see cref="Q4_KCodec"/>): group g of 16 gets the step amax_g / 31 (codes q − 32 in
/// [−32, 31]); d is the largest step over 127 (int8 scales), rounded to f16 before the scales and quants are chosen
/// against it. The dequantizer is ggml's: y = d·scales[e/16]·(q − 32).
/// </summary>
public static class Q6_KCodec
{
    /// <summary>f32 → Q6_K super-blocks.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y) => Blocks.Quantize(DataType.Q6_K, x, y, QuantizeBlock);

    /// <summary>Q6_K super-blocks → f32.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, Span<float> y) => Blocks.Dequantize(DataType.Q6_K, x, y, DequantizeBlock);

    private static void QuantizeBlock(ReadOnlySpan<float> x, Span<byte> y)
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
                q[16 * g + i] = (byte)(Math.Clamp((int)Quantizer.RoundHalfAwayFromZero(x[16 * g + i] * inv), -32, 31) + 32);
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

    private static void DequantizeBlock(ReadOnlySpan<byte> blk, Span<float> y)
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
}
