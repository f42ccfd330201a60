using System.Buffers.Binary;
using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>Reading and writing the rows of a <see cref="TensorView"/> on a <see cref="ScalarBuffer"/> (little-endian).</summary>
internal static class Views
{
    /// <summary>The bytes of row <paramref name="row"/> of <paramref name="view"/>.</summary>
    public static Span<byte> RowBytes(in TensorView view, int row)
    {
        long start = view.Offset + view.RowBytes * row;
        return ((ScalarBuffer)view.Buffer).Data.AsSpan(checked((int)start), checked((int)view.RowBytes));
    }

    /// <summary>All bytes of <paramref name="view"/>.</summary>
    public static Span<byte> Bytes(in TensorView view)
        => ((ScalarBuffer)view.Buffer).Data.AsSpan(checked((int)view.Offset), checked((int)view.ByteLength));

    /// <summary>Row <paramref name="row"/> of an F32 view as floats.</summary>
    public static float[] ReadRow(in TensorView view, int row)
    {
        Span<byte> bytes = RowBytes(view, row);
        var values = new float[view.Cols];
        for (int i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(4 * i)..]);
        return values;
    }

    /// <summary>Writes <paramref name="values"/> as row <paramref name="row"/> of an F32 view.</summary>
    public static void WriteRow(in TensorView view, int row, ReadOnlySpan<float> values)
    {
        Span<byte> bytes = RowBytes(view, row);
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes[(4 * i)..], values[i]);
    }

    /// <summary>Every element of an I32 view, row after row.</summary>
    public static int[] ReadInts(in TensorView view)
    {
        Span<byte> bytes = Bytes(view);
        var values = new int[(long)view.Rows * view.Cols];
        for (int i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(4 * i)..]);
        return values;
    }

    /// <summary>Writes <paramref name="values"/> into an I32 view.</summary>
    public static void WriteInts(in TensorView view, ReadOnlySpan<int> values)
    {
        Span<byte> bytes = Bytes(view);
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteInt32LittleEndian(bytes[(4 * i)..], values[i]);
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> unless 0 ≤ <paramref name="value"/> &lt; <paramref name="limit"/>.</summary>
    public static void CheckIndex(string op, string what, long value, long limit)
    {
        if (value < 0 || value >= limit)
            throw new ArgumentOutOfRangeException(what, $"{op}: {what} {value} is outside [0, {limit})");
    }
}
