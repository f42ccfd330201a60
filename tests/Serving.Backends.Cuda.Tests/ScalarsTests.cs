using Serving.Abstractions;
using Serving.Backends.Cuda.Kernels;
using Serving.Backends.Cuda.Kernels.Formats;

namespace Serving.Backends.Cuda.Tests;

/// <summary>The kernels' integer-only conversions agree with .NET's, and the weight repacking keeps every byte.</summary>
public sealed class ScalarsTests
{
    [Fact]
    public void Every_half_widens_exactly()
    {
        for (int h = 0; h < 65536; h++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)h);
            float actual = Scalars.HalfToFloat((uint)h);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"0x{h:x4}");
            else Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual), $"0x{h:x4}: {expected} vs {actual}");
        }
    }

    [Fact]
    public void Floats_round_to_half_as_dotnet_does()
    {
        var random = new Random(7);
        var values = new List<float> { 0f, -0f, 65504f, 65519.99f, 65520f, -65520f, 1e-8f, 2.98e-8f, 2.9802322e-8f, 5.96e-8f, 6.1e-5f, 6.097555e-5f, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon };
        for (int i = 0; i < 200_000; i++)
            values.Add(BitConverter.Int32BitsToSingle(random.Next()) * (random.Next(2) == 0 ? 1 : -1));
        for (int i = 0; i < 100_000; i++)
            values.Add((float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-30, 20))));
        foreach (float f in values)
        {
            if (float.IsNaN(f)) continue;
            ushort expected = BitConverter.HalfToUInt16Bits((Half)f);
            Assert.True(expected == Scalars.FloatToHalf(f), $"{f:R} (0x{BitConverter.SingleToInt32Bits(f):x8}): 0x{expected:x4} vs 0x{Scalars.FloatToHalf(f):x4}");
        }
        Assert.True(float.IsNaN(Scalars.HalfToFloat(Scalars.FloatToHalf(float.NaN))));
    }

    [Fact]
    public void Dot4_is_the_sum_of_signed_byte_products()
    {
        var random = new Random(3);
        for (int i = 0; i < 10_000; i++)
        {
            int a = random.Next(int.MinValue, int.MaxValue), b = random.Next(int.MinValue, int.MaxValue), c = random.Next(-1000, 1000);
            int expected = c;
            for (int k = 0; k < 4; k++) expected += (sbyte)(a >> (8 * k)) * (sbyte)(b >> (8 * k));
            Assert.Equal(expected, Scalars.Dot4<SerialLanes>(a, b, c));
        }
    }

    [Fact]
    public void Center_subtracts_the_bias_from_every_byte()
    {
        foreach (uint bias in new uint[] { 8, 16, 32 })
        {
            for (uint q = 0; q < 2 * bias; q++)
            {
                uint word = q | ((2 * bias - 1 - q) << 8) | ((q / 2) << 16) | (bias << 24);
                int centered = Scalars.Center(word, bias);
                Assert.Equal((int)q - (int)bias, (sbyte)centered);
                Assert.Equal((int)(2 * bias - 1 - q) - (int)bias, (sbyte)(centered >> 8));
                Assert.Equal((int)(q / 2) - (int)bias, (sbyte)(centered >> 16));
                Assert.Equal(0, centered >> 24);
            }
        }
    }

    [Theory]
    [InlineData(DataType.Q8_0)]
    [InlineData(DataType.Q4_0)]
    [InlineData(DataType.Q5_0)]
    [InlineData(DataType.Q6_K)]
    [InlineData(DataType.Q4_K)]
    public unsafe void Repacking_moves_scales_to_their_plane_and_keeps_every_byte(DataType type)
    {
        int rows = 3, cols = type.BlockSize() * 2;
        byte[] source = new byte[rows * type.RowBytes(cols)];
        new Random((int)type).NextBytes(source);
        fixed (byte* p = source)
        {
            var ws = new WeightSource("w", (nint)p, source.Length, type, rows, cols, false);
            byte[] device = new byte[WeightLayout.DeviceBytes(ws)];
            WeightLayout.Repack(ws, device);
            int scaleAt = WeightLayout.ScaleOffsetInBlock(type), blockBytes = type.BlockBytes();
            if (scaleAt < 0)
            {
                Assert.Equal(source, device[..source.Length]);
                return;
            }
            long scales = WeightLayout.ScaleOffsetHalves(ws) * 2;
            int bodyBytes = blockBytes - 2;
            for (int b = 0; b < source.Length / blockBytes; b++)
            {
                byte[] block = source[(b * blockBytes)..((b + 1) * blockBytes)];
                Assert.Equal(block[scaleAt], device[scales + 2 * b]);
                Assert.Equal(block[scaleAt + 1], device[scales + 2 * b + 1]);
                Assert.Equal([.. block[..scaleAt], .. block[(scaleAt + 2)..]], device[(b * bodyBytes)..((b + 1) * bodyBytes)]);
            }
            Assert.Equal(0, scales % 4);
        }
    }
}
