using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// The row loop of the block codecs: a row is cut into the format's blocks (geometry from the contract's
/// <see cref="DataTypes"/>) and each block handed to the codec, so a codec file holds only the math of one block.
/// Sizes are checked by <see cref="WeightFormat"/> before a row gets here.
/// </summary>
internal static class Blocks
{
    /// <summary>Quantizes one block: x holds BlockSize values, block BlockBytes bytes.</summary>
    public delegate void Encoder(ReadOnlySpan<float> x, Span<byte> block);

    /// <summary>Dequantizes one block: block holds BlockBytes bytes, y BlockSize values.</summary>
    public delegate void Decoder(ReadOnlySpan<byte> block, Span<float> y);

    /// <summary>Runs <paramref name="encode"/> over every block of the row.</summary>
    public static void Quantize(DataType type, ReadOnlySpan<float> x, Span<byte> y, Encoder encode)
    {
        int size = type.BlockSize(), bytes = type.BlockBytes();
        for (int b = 0; b < x.Length / size; b++)
            encode(x.Slice(b * size, size), y.Slice(b * bytes, bytes));
    }

    /// <summary>Runs <paramref name="decode"/> over every block of the row.</summary>
    public static void Dequantize(DataType type, ReadOnlySpan<byte> x, Span<float> y, Decoder decode)
    {
        int size = type.BlockSize(), bytes = type.BlockBytes();
        for (int b = 0; b < y.Length / size; b++)
            decode(x.Slice(b * bytes, bytes), y.Slice(b * size, size));
    }
}
