using System.Buffers.Binary;
using Serving.Abstractions;
using Serving.Engine.Quantization;

namespace Serving.Engine.Tests.Quantization;

/// <summary>Quantizers match ggml's reference bit for bit on hand-computed blocks; round trips stay within bounds.</summary>
public class QuantizerTests
{
    private static byte[] Quantize(DataType type, float[] x)
    {
        var y = new byte[type.RowBytes(x.Length)];
        Quantizer.Quantize(type, x, y);
        return y;
    }

    [Fact]
    public void Q8_0_known_block()
    {
        // amax = 127 → d = 1 (f16 0x3C00); q = roundf(x): halves go away from zero.
        var x = new float[32];
        float[] head = [127f, -127f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 0.49999997f, 3.4f];
        head.CopyTo(x, 0);
        var y = Quantize(DataType.Q8_0, x);
        Assert.Equal(34, y.Length);
        Assert.Equal(0x3C00, BinaryPrimitives.ReadUInt16LittleEndian(y));
        sbyte[] expected = [127, -127, 1, -1, 2, 3, -3, 0, 3];
        for (int j = 0; j < 32; j++)
            Assert.Equal(j < expected.Length ? expected[j] : 0, (sbyte)y[2 + j]);
    }

    [Fact]
    public void Q8_0_all_zero_block_has_zero_scale()
    {
        var y = Quantize(DataType.Q8_0, new float[64]);
        Assert.All(y, b => Assert.Equal(0, b));
    }

    [Fact]
    public void Q4_0_known_block_with_negative_max()
    {
        // Largest magnitude is -8 → d = -8 / -8 = 1; q = min(15, trunc(x + 8.5)).
        var x = new float[32];
        x[0] = -8f;   // → 0
        x[16] = 7f;   // → 15
        x[1] = 0f;    // → 8
        x[17] = 7.6f; // → trunc(16.1) = 16 → clamped to 15
        x[2] = -0.6f; // → 7
        x[18] = 0.5f; // → 9
        var y = Quantize(DataType.Q4_0, x);
        Assert.Equal(18, y.Length);
        Assert.Equal(0x3C00, BinaryPrimitives.ReadUInt16LittleEndian(y));
        Assert.Equal(0xF0, y[2]); // low nibble element 0, high nibble element 16
        Assert.Equal(0xF8, y[3]);
        Assert.Equal(0x97, y[4]);
        for (int j = 3; j < 16; j++)
            Assert.Equal(0x88, y[2 + j]);
    }

    [Fact]
    public void Q5_0_known_block_with_negative_max()
    {
        // Largest magnitude is -16 → d = -16 / -16 = 1; q = min(31, trunc(x + 16.5)); the low 4 bits go in the nibbles,
        // bit 4 of element j in bit j of the little-endian uint32 qh.
        var x = new float[32];
        x[0] = -16f;  // → 0
        x[16] = 15f;  // → 31
        x[1] = 0f;    // → 16 (as every element left at 0)
        x[17] = 15.6f; // → trunc(32.1) = 32 → clamped to 31
        x[2] = -0.6f; // → 15
        x[18] = 0.5f; // → 17
        var y = Quantize(DataType.Q5_0, x);
        Assert.Equal(22, y.Length);
        Assert.Equal(0x3C00, BinaryPrimitives.ReadUInt16LittleEndian(y));
        // Fifth bits: clear for elements 0 (q = 0) and 2 (q = 15), set for every other (q ≥ 16).
        Assert.Equal(0xFFFFFFFAu, BinaryPrimitives.ReadUInt32LittleEndian(y.AsSpan(2)));
        Assert.Equal(0xF0, y[6]); // low nibble element 0 (0), high nibble element 16 (31 & 15)
        Assert.Equal(0xF0, y[7]); // 16 & 15, 31 & 15
        Assert.Equal(0x1F, y[8]); // 15, 17 & 15
        for (int j = 3; j < 16; j++)
            Assert.Equal(0x00, y[6 + j]);
    }

    [Fact]
    public void Q5_0_known_block_dequantizes_by_hand()
    {
        // d = 0.5; qh = bits 0, 5, 16, 31 → 0x80010021; value = (q − 16)·d.
        var blk = new byte[22];
        BinaryPrimitives.WriteUInt16LittleEndian(blk, 0x3800);
        BinaryPrimitives.WriteUInt32LittleEndian(blk.AsSpan(2), 0x80010021u);
        blk[6 + 0] = 0x3A;  // element 0 nibble 10, element 16 nibble 3
        blk[6 + 15] = 0xF0; // element 15 nibble 0, element 31 nibble 15
        var y = new float[32];
        Dequantizer.DequantizeRow(DataType.Q5_0, blk, y);
        Assert.Equal((26 - 16) * 0.5f, y[0]);  // 10 + 16
        Assert.Equal((19 - 16) * 0.5f, y[16]); // 3 + 16
        Assert.Equal((0 - 16) * 0.5f, y[15]);  // bit 15 clear
        Assert.Equal((31 - 16) * 0.5f, y[31]); // 15 + 16
        Assert.Equal(0f, y[5]);                // nibble 0, bit 5 set: q = 16
        Assert.Equal(-8f, y[1]);               // q = 0
        Assert.Equal(-8f, y[21]);              // bit 21 clear, high nibble of qs[5] = 0
    }

    [Fact]
    public void Q4_0_known_block_with_positive_max()
    {
        // Largest magnitude is +16 → d = 16 / -8 = -2 (f16 0xC000); 16 maps to q 0, i.e. (0 - 8) · -2 = 16.
        var x = new float[32];
        x[5] = 16f;
        x[6] = -14f; // -14 · -0.5 + 8.5 = 15.5 → 15
        var y = Quantize(DataType.Q4_0, x);
        Assert.Equal(0xC000, BinaryPrimitives.ReadUInt16LittleEndian(y));
        Assert.Equal(0x80, y[2 + 5]);
        Assert.Equal(0x8F, y[2 + 6]);
        var back = new float[32];
        Dequantizer.DequantizeRow(DataType.Q4_0, y, back);
        Assert.Equal(16f, back[5]);
        Assert.Equal(-14f, back[6]);
        Assert.Equal(0f, back[0]);
    }

    [Fact]
    public void F16_rounds_to_nearest_even()
    {
        float[] x = [1f + MathF.Pow(2, -11), 1f + 3 * MathF.Pow(2, -11), 65504f, 1e-8f, -2f, 65520f];
        var y = Quantize(DataType.F16, x);
        ushort[] expected = [0x3C00, 0x3C02, 0x7BFF, 0x0000, 0xC000, 0x7C00];
        for (int i = 0; i < x.Length; i++)
            Assert.Equal(expected[i], BinaryPrimitives.ReadUInt16LittleEndian(y.AsSpan(2 * i)));
    }

    [Fact]
    public void BF16_rounds_like_ggml()
    {
        Assert.Equal(0x3F80, BF16Codec.FromSingle(1f + MathF.Pow(2, -8)));     // tie → even (down)
        Assert.Equal(0x3F82, BF16Codec.FromSingle(1f + 3 * MathF.Pow(2, -8))); // tie → even (up)
        Assert.Equal(0x3F81, BF16Codec.FromSingle(1f + 1.5f * MathF.Pow(2, -8) - MathF.Pow(2, -20) + MathF.Pow(2, -9)));
        Assert.Equal(0xC000, BF16Codec.FromSingle(-2f));
        Assert.Equal(0x7FC0, BF16Codec.FromSingle(BitConverter.UInt32BitsToSingle(0x7F800001))); // signalling NaN made quiet
        Assert.Equal(0x7F80, BF16Codec.FromSingle(float.PositiveInfinity));
        Assert.Equal(-2f, BF16Codec.ToSingle(0xC000));
    }

    [Theory]
    [InlineData(DataType.F32)]
    [InlineData(DataType.F16)]
    [InlineData(DataType.BF16)]
    [InlineData(DataType.Q8_0)]
    [InlineData(DataType.Q4_0)]
    [InlineData(DataType.Q5_0)]
    public void Round_trip_error_is_within_the_format_bound(DataType type)
    {
        var rng = new Random(7);
        var x = new float[32 * 40];
        for (int i = 0; i < x.Length; i++)
            x[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-3, 3)) * (i % 97 == 0 ? 50 : 1));
        var y = Quantize(type, x);
        var back = new float[x.Length];
        Dequantizer.DequantizeRow(type, y, back);
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++)
                amax = MathF.Max(amax, MathF.Abs(x[b * 32 + j]));
            for (int j = 0; j < 32; j++)
            {
                int i = b * 32 + j;
                // Bounds: half a step of the format, plus the f16 rounding of the block scale (2^-11 relative).
                float bound = type switch
                {
                    DataType.F32 => 0f,
                    DataType.F16 => MathF.Abs(x[i]) * MathF.Pow(2, -11) + 6e-8f,
                    DataType.BF16 => MathF.Abs(x[i]) * MathF.Pow(2, -8),
                    DataType.Q8_0 => amax / 127 * (0.5f + 127 * MathF.Pow(2, -11)) * 1.0001f,
                    DataType.Q5_0 => amax / 16 * (1f + 16 * MathF.Pow(2, -11)) * 1.0001f, // a full step where +16 clamps to 15
                    _ => amax / 8 * (1f + 8 * MathF.Pow(2, -11)) * 1.0001f, // Q4_0: a full step where +8 clamps to 7
                };
                Assert.True(MathF.Abs(back[i] - x[i]) <= bound, $"{type} element {i}: {x[i]} came back as {back[i]} (bound {bound})");
            }
        }
    }

    [Fact]
    public void Q8_0_vector_path_matches_the_scalar_reference_bit_for_bit()
    {
        var rng = new Random(3);
        var x = new float[32 * 200];
        for (int i = 0; i < x.Length; i++)
        {
            int block = i / 32;
            // Halves and integers (exact ties after scaling when amax = 127), zeros, and wide random ranges.
            x[i] = (block % 4) switch
            {
                0 => (i % 32 == 0 ? 127f : rng.Next(-254, 255) / 2f),
                1 => 0f,
                _ => (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-20, 20))),
            };
        }
        var scalar = new byte[DataType.Q8_0.RowBytes(x.Length)];
        var vector = new byte[scalar.Length];
        Q8_0Codec.QuantizeScalar(x, scalar);
        Q8_0Codec.QuantizeVector256(x, vector);
        Assert.Equal(scalar, vector);
    }

    [Fact]
    public void Lengths_are_checked()
    {
        Assert.Throws<ArgumentException>(() => Quantizer.Quantize(DataType.Q8_0, new float[33], new byte[68]));
        Assert.Throws<ArgumentException>(() => Quantizer.Quantize(DataType.Q8_0, new float[32], new byte[35]));
        Assert.Throws<ArgumentException>(() => Quantizer.Quantize(DataType.I32, new float[1], new byte[4]));
        Assert.Throws<ArgumentException>(() => Dequantizer.DequantizeRow(DataType.Q4_0, new byte[17], new float[32]));
    }
}
