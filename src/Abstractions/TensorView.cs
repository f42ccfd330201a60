namespace Serving.Abstractions;

/// <summary>
/// A 2-D row-major view into a device buffer: <see cref="Rows"/> rows of <see cref="Cols"/> elements each,
/// rows contiguous (row stride = <see cref="DataTypes.RowBytes"/>(Cols)). A vector is one row.
/// Views are cheap values; they do not own the buffer.
/// </summary>
/// <param name="Buffer">The buffer holding the data.</param>
/// <param name="Offset">Byte offset of row 0 in <paramref name="Buffer"/>.</param>
/// <param name="Type">Element type.</param>
/// <param name="Rows">Number of rows (T for activations, N for weights).</param>
/// <param name="Cols">Elements per row (K for weights).</param>
public readonly record struct TensorView(IDeviceBuffer Buffer, long Offset, DataType Type, int Rows, int Cols)
{
    /// <summary>Bytes of one row.</summary>
    public long RowBytes => Type.RowBytes(Cols);

    /// <summary>Bytes of the whole view.</summary>
    public long ByteLength => RowBytes * Rows;

    /// <summary>Rows [start, start+count) of this view.</summary>
    public TensorView SliceRows(int start, int count)
    {
        if ((uint)start > (uint)Rows || (uint)count > (uint)(Rows - start))
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) outside [0, {Rows})");
        return this with { Offset = Offset + RowBytes * start, Rows = count };
    }

    /// <summary>The same bytes seen as <paramref name="rows"/> × <paramref name="cols"/> (same type).</summary>
    public TensorView Reshape(int rows, int cols)
    {
        var v = this with { Rows = rows, Cols = cols };
        if (v.ByteLength != ByteLength)
            throw new ArgumentException($"cannot reshape [{Rows}, {Cols}] to [{rows}, {cols}]");
        return v;
    }

    /// <summary>Throws unless the view lies inside its buffer.</summary>
    public void CheckBounds(string name)
    {
        if (Buffer is null) throw new ArgumentNullException(name, $"{name}: no buffer");
        if (Rows < 0 || Cols < 0 || Offset < 0 || Offset + ByteLength > Buffer.Length)
            throw new ArgumentOutOfRangeException(name,
                $"{name}: view [{Rows}, {Cols}] {Type} at offset {Offset} exceeds buffer of {Buffer.Length} bytes");
    }

    /// <inheritdoc/>
    public override string ToString() => $"[{Rows}, {Cols}] {Type.Name()} @{Offset}";
}
