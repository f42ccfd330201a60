using System.Buffers.Binary;
using Serving.Abstractions;
using Serving.Conformance.Tests.Cases;

namespace Serving.Conformance.Tests;

/// <summary>Decodes one block of a weight format into its values, in float64 (see <see cref="Reference"/>).</summary>
public delegate void BlockDecoder(ReadOnlySpan<byte> block, Span<double> values);

/// <summary>Fills one block of a weight format with seeded random data.</summary>
public delegate void BlockFiller(TestData data, Span<byte> block);

/// <summary>One weight format as the suite checks it.</summary>
/// <param name="Type">The format; its block size and bytes come from the contract (<see cref="DataTypes"/>).</param>
/// <param name="Decode">The float64 reference decoder of one block, written from the GGUF layout, never from a backend.</param>
/// <param name="Fill">Random data for one block (<see cref="TestData.Weights"/>).</param>
public sealed record WeightFormatCase(DataType Type, BlockDecoder Decode, BlockFiller Fill);

/// <summary>
/// The suite's table of weight formats: every MatMul and Embed check runs over these rows, so a format the contract
/// gains is tested by adding its row here. Fillers make values of order 0.1 from random bit patterns rather than a
/// quantizer's output, so every code is exercised: any scale sign, every nibble and high bit. Q8_0 codes stay in
/// [−127, 127] because quantizers (llama.cpp's included) never emit −128. K-quant super-scales (d, dmin) are normal
/// f16 values so that values stay of order 0.1; every other byte is random.
/// </summary>
public static class WeightFormatCases
{
    /// <summary>Every row, in the order the suite reports them.</summary>
    public static readonly WeightFormatCase[] All =
    [
        new(DataType.F32, Reference.F32Element, (data, b) => BinaryPrimitives.WriteSingleLittleEndian(b, data.NormalOne(0.1))),
        new(DataType.F16, Reference.F16Element, (data, b) => BinaryPrimitives.WriteHalfLittleEndian(b, (Half)data.NormalOne(0.1))),
        // Truncation is as good as rounding for random test data.
        new(DataType.BF16, Reference.BF16Element,
            (data, b) => BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)(BitConverter.SingleToUInt32Bits(data.NormalOne(0.1)) >> 16))),
        new(DataType.Q8_0, Reference.Q8_0Block, (data, b) =>
        {
            data.WriteScale(b, 0.1 / 64);
            for (int j = 0; j < 32; j++) b[2 + j] = (byte)(sbyte)data.Next(-127, 128);
        }),
        new(DataType.Q4_0, Reference.Q4_0Block, (data, b) =>
        {
            data.WriteScale(b, 0.1 / 4);
            data.Fill(b[2..]);
        }),
        new(DataType.Q5_0, Reference.Q5_0Block, (data, b) =>
        {
            data.WriteScale(b, 0.1 / 8); // |q − 16| ≈ 8
            data.Fill(b[2..]);           // qh and qs: every fifth bit and nibble
        }),
        // E[sc·q] = 31.5·7.5 and E[m] = 31.5: dmin ≈ 7.5·|d| centres the values when d > 0.
        new(DataType.Q4_K, Reference.Q4_KBlock, (data, b) => FillScaleMinK(data, b, 7.5)),
        // E[sc·q] = 31.5·15.5 and E[m] = 31.5: dmin ≈ 15.5·|d| centres the values when d > 0.
        new(DataType.Q5_K, Reference.Q5_KBlock, (data, b) => FillScaleMinK(data, b, 15.5)),
        new(DataType.Q6_K, Reference.Q6_KBlock, (data, b) =>
        {
            data.Fill(b[..208]);
            data.WriteScale(b[208..], 0.1 / (64 * 8)); // |scale| ≈ 64, |q − 32| ≈ 16: values ≈ 0.2, d a normal f16
        }),
    ];

    /// <summary>The weight types of MatMul and Embed.</summary>
    public static readonly DataType[] Types = [.. All.Select(f => f.Type)];

    /// <summary>The row of <paramref name="type"/>; throws <see cref="ArgumentOutOfRangeException"/> for a type that is not a weight format.</summary>
    public static WeightFormatCase Get(DataType type)
        => Array.Find(All, f => f.Type == type) ?? throw new ArgumentOutOfRangeException(nameof(type), type, "not a weight type");

    // A scale-and-min K-quant (Q4_K, Q5_K) super-block whose mean quant is meanQ: random scales, mins and quants,
    // then d and dmin.
    private static void FillScaleMinK(TestData data, Span<byte> block, double meanQ)
    {
        data.Fill(block[4..]);
        double d = 0.1 / (31.5 * meanQ);
        data.WriteScale(block, d);
        BinaryPrimitives.WriteHalfLittleEndian(block[2..], (Half)(meanQ * d * (0.5 + data.NextDouble())));
    }
}
