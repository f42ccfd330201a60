using System.Buffers.Binary;
using Serving.Abstractions;
using Serving.Engine.Quantization;

namespace Serving.Engine.Tests.Quantization;

/// <summary>
/// Q4_K, Q5_K and Q6_K: the dequantizer against blocks built byte by byte from the ggml layout (values computed by hand),
/// and the simple quantizer's round trip.
/// </summary>
public class KQuantTests
{
    [Fact]
    public void Sizes_and_names_follow_ggml()
    {
        Assert.Equal((256, 144, "q4_K"), (DataType.Q4_K.BlockSize(), DataType.Q4_K.BlockBytes(), DataType.Q4_K.Name()));
        Assert.Equal((256, 176, "q5_K"), (DataType.Q5_K.BlockSize(), DataType.Q5_K.BlockBytes(), DataType.Q5_K.Name()));
        Assert.Equal((256, 210, "q6_K"), (DataType.Q6_K.BlockSize(), DataType.Q6_K.BlockBytes(), DataType.Q6_K.Name()));
        Assert.Equal(12, (int)DataType.Q4_K);
        Assert.Equal(13, (int)DataType.Q5_K);
        Assert.Equal(14, (int)DataType.Q6_K);
        Assert.Throws<ArgumentException>(() => DataType.Q4_K.RowBytes(288));
    }

    [Fact]
    public void Q4_K_known_block()
    {
        // d = 1, dmin = 0.5; scales sc = {1, 2, 3, 4, 17, 33, 63, 5}, mins m = {0, 1, 2, 3, 16, 32, 63, 7}, packed as
        // get_scale_min_k4 reads them: bytes 0–3 = sc0..3 with sc4..7's top 2 bits in bits 6–7; bytes 4–7 = m0..3 with
        // m4..7's top 2 bits; bytes 8–11 = sc4..7's low nibble | m4..7's low nibble << 4.
        var blk = new byte[144];
        BinaryPrimitives.WriteUInt16LittleEndian(blk, 0x3C00);       // d = 1
        BinaryPrimitives.WriteUInt16LittleEndian(blk.AsSpan(2), 0x3800); // dmin = 0.5
        byte[] scales = [1 | 1 << 6, 2 | 2 << 6, 3 | 3 << 6, 4, 0 | 1 << 6, 1 | 2 << 6, 2 | 3 << 6, 3, 0x01, 0x01, 0xFF, 0x75];
        scales.CopyTo(blk, 4);
        blk[16 + 0] = 0x3A;        // element 0 (sub-block 0) q = 10, element 32 (sub-block 1) q = 3
        blk[16 + 64 + 5] = 0xF1;   // element 133 (sub-block 4) q = 1, element 165 (sub-block 5) q = 15
        blk[16 + 96 + 31] = 0x9C;  // element 223 (sub-block 6) q = 12, element 255 (sub-block 7) q = 9
        var y = new float[256];
        Dequantizer.DequantizeRow(DataType.Q4_K, blk, y);
        // y = d·sc·q − dmin·m
        Assert.Equal(1 * 10 - 0f, y[0]);
        Assert.Equal(2 * 3 - 0.5f, y[32]);
        Assert.Equal(17 * 1 - 8f, y[133]);
        Assert.Equal(33 * 15 - 16f, y[165]);
        Assert.Equal(63 * 12 - 31.5f, y[223]);
        Assert.Equal(5 * 9 - 3.5f, y[255]);
        // q = 0 elsewhere: −dmin·m of the element's sub-block.
        Assert.Equal(0f, y[1]);
        Assert.Equal(-0.5f, y[33]);
        Assert.Equal(-1.5f, y[100]);
        Assert.Equal(-31.5f, y[200]);
        Assert.Equal(-3.5f, y[254]);
    }

    [Fact]
    public void Q5_K_known_block()
    {
        // Q4_K's scales and mins (d = 1, dmin = 0.5; sc = {1, 2, 3, 4, 17, 33, 63, 5}, m = {0, 1, 2, 3, 16, 32, 63, 7}),
        // then qh[32] at 16 and qs[128] at 48. Element 64g + l: low nibble of qs[32g + l] + 16·bit 2g of qh[l];
        // element 64g + 32 + l: high nibble + 16·bit 2g + 1.
        var blk = new byte[176];
        BinaryPrimitives.WriteUInt16LittleEndian(blk, 0x3C00);       // d = 1
        BinaryPrimitives.WriteUInt16LittleEndian(blk.AsSpan(2), 0x3800); // dmin = 0.5
        byte[] scales = [1 | 1 << 6, 2 | 2 << 6, 3 | 3 << 6, 4, 0 | 1 << 6, 1 | 2 << 6, 2 | 3 << 6, 3, 0x01, 0x01, 0xFF, 0x75];
        scales.CopyTo(blk, 4);
        blk[16 + 0] = 0x01;        // qh[0]: element 0 gets +16, element 32 does not
        blk[16 + 1] = 0x01;        // qh[1]: element 1 (nibble 0) gets +16
        blk[16 + 5] = 0x30;        // qh[5]: bits 4 and 5, elements 133 and 165
        blk[16 + 31] = 0x80;       // qh[31]: bit 7, element 255 (not 223)
        blk[48 + 0] = 0x3A;        // element 0 nibble 10, element 32 nibble 3
        blk[48 + 64 + 5] = 0xF1;   // element 133 nibble 1, element 165 nibble 15
        blk[48 + 96 + 31] = 0x9C;  // element 223 nibble 12, element 255 nibble 9
        var y = new float[256];
        Dequantizer.DequantizeRow(DataType.Q5_K, blk, y);
        // y = d·sc·q − dmin·m
        Assert.Equal(1 * 26 - 0f, y[0]);          // q = 10 + 16
        Assert.Equal(2 * 3 - 0.5f, y[32]);        // q = 3
        Assert.Equal(1 * 16 - 0f, y[1]);          // q = 0 + 16
        Assert.Equal(17 * 17 - 8f, y[133]);       // q = 1 + 16
        Assert.Equal(33 * 31 - 16f, y[165]);      // q = 15 + 16
        Assert.Equal(63 * 12 - 31.5f, y[223]);    // q = 12
        Assert.Equal(5 * 25 - 3.5f, y[255]);      // q = 9 + 16
        Assert.Equal(-0.5f, y[33]);               // q = 0 in sub-block 1
        Assert.Equal(-1.5f, y[100]);              // sub-block 3
        Assert.Equal(-3.5f, y[254]);              // sub-block 7
    }

    [Fact]
    public void Q6_K_known_block()
    {
        // d = 0.5; scales[g] = 1 except scales[0] = 2, scales[2] = −3, scales[5] = 4, scales[15] = −128.
        var blk = new byte[210];
        for (int g = 0; g < 16; g++) blk[192 + g] = 1;
        blk[192 + 0] = 2;
        blk[192 + 2] = unchecked((byte)-3);
        blk[192 + 5] = 4;
        blk[192 + 15] = 0x80;
        BinaryPrimitives.WriteUInt16LittleEndian(blk.AsSpan(208), 0x3800);
        blk[0] = 0x5A;            // ql[0]: element 0 low 4 bits = 10, element 64 low 4 bits = 5
        blk[32] = 0xC7;           // ql[32]: element 32 = 7, element 96 = 12
        blk[128] = 0b10_01_11_01; // qh[0]: high 2 bits of elements 0, 32, 64, 96 = 1, 3, 1, 2
        blk[20] = 0xF0;           // ql[20]: element 20 = 0, element 84 = 15
        blk[128 + 20] = 0x30;     // qh[20]: element 84's high bits = 3
        blk[127] = 0x0F;          // ql[64 + 32 + 31]: element 191 = 15, element 255 = 0
        var y = new float[256];
        Dequantizer.DequantizeRow(DataType.Q6_K, blk, y);
        // y = d·scales[e / 16]·(q − 32)
        Assert.Equal(0.5f * 2 * (26 - 32), y[0]);    // q = 10 | 1 << 4
        Assert.Equal(0.5f * -3 * (55 - 32), y[32]);  // q = 7 | 3 << 4, group 2
        Assert.Equal(0.5f * 1 * (21 - 32), y[64]);   // q = 5 | 1 << 4, group 4
        Assert.Equal(0.5f * 1 * (44 - 32), y[96]);   // q = 12 | 2 << 4, group 6
        Assert.Equal(0.5f * 1 * (0 - 32), y[20]);    // group 1
        Assert.Equal(0.5f * 4 * (63 - 32), y[84]);   // q = 15 | 3 << 4, group 5
        Assert.Equal(0.5f * 1 * (15 - 32), y[191]);  // group 11
        Assert.Equal(0.5f * -128 * (0 - 32), y[255]); // group 15
        Assert.Equal(0.5f * 2 * -32, y[1]);
        Assert.Equal(0.5f * -3 * -32, y[40]);
    }

    [Theory]
    [InlineData(DataType.Q4_K)]
    [InlineData(DataType.Q5_K)]
    [InlineData(DataType.Q6_K)]
    public void Round_trip_error_is_within_the_format_bound(DataType type)
    {
        var rng = new Random(11);
        var x = new float[256 * 12];
        for (int i = 0; i < x.Length; i++)
        {
            int sb = i / 256;
            // Super-blocks of different scales, one all-positive, one all-zero, and occasional outliers.
            double v = (rng.NextDouble() * 2 - 1) * Math.Pow(10, sb % 5 - 3) * (i % 97 == 0 ? 20 : 1);
            x[i] = sb == 7 ? 0f : sb == 9 ? (float)Math.Abs(v) : (float)v;
        }
        var y = new byte[type.RowBytes(x.Length)];
        Quantizer.Quantize(type, x, y);
        var back = new float[x.Length];
        Dequantizer.DequantizeRow(type, y, back);
        int group = type == DataType.Q6_K ? 16 : 32;
        float levels = type == DataType.Q5_K ? 31 : 15; // Q4_K / Q5_K steps per sub-block
        for (int sb = 0; sb < x.Length / 256; sb++)
        {
            float superMax = 0;
            for (int i = 0; i < 256; i++) superMax = MathF.Max(superMax, MathF.Abs(x[256 * sb + i]));
            for (int g = 0; g < 256 / group; g++)
            {
                int first = 256 * sb + g * group;
                float lo = 0, hi = 0;
                for (int i = 0; i < group; i++) { lo = MathF.Min(lo, x[first + i]); hi = MathF.Max(hi, x[first + i]); }
                // Q4_K/Q5_K: half a step of (hi − lo)/levels, the 6-bit rounding of the step (≤ d = maxStep/63) and of
                // the min (≤ dmin/2), with f16 slack. Q6_K: half a step of amax/31 plus the 8-bit rounding of the step.
                float bound = type != DataType.Q6_K
                    ? ((hi - lo) / (2 * levels) + superMax * 2 / levels / 63 + superMax / 63) * 1.01f
                    : (MathF.Max(hi, -lo) / 62 + superMax / 31 / 127) * 1.01f;
                for (int i = 0; i < group; i++)
                {
                    int e = first + i;
                    Assert.True(MathF.Abs(back[e] - x[e]) <= bound + 1e-30f, $"{type} element {e}: {x[e]} came back as {back[e]} (bound {bound})");
                }
            }
        }
        Assert.All(back.AsSpan(256 * 7, 256).ToArray(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Lengths_are_checked()
    {
        Assert.Throws<ArgumentException>(() => Quantizer.Quantize(DataType.Q4_K, new float[288], new byte[162]));
        Assert.Throws<ArgumentException>(() => Quantizer.Quantize(DataType.Q6_K, new float[256], new byte[209]));
        Assert.Throws<ArgumentException>(() => Quantizer.Quantize(DataType.Q5_K, new float[256], new byte[144]));
        Assert.Throws<ArgumentException>(() => Dequantizer.DequantizeRow(DataType.Q5_K, new byte[176], new float[288]));
        Assert.Throws<ArgumentException>(() => Dequantizer.DequantizeRow(DataType.Q6_K, new byte[210], new float[32]));
    }
}
