using Serving.Abstractions;
using Serving.Engine.Quantization;

namespace Serving.Engine.Gguf;

/// <summary>
/// One tensor of a GGUF file, as validated by the reader (or declared to the writer).
/// Dims are in ggml order: Dims[0] = ne0 = row length (the contiguous dimension), Dims[1] = rows, and so on;
/// so a weight W[N, K] (N outputs, K inputs) has Dims = {K, N}.
/// </summary>
public sealed class GgufTensorInfo
{
    /// <summary>Creates a tensor description.</summary>
    /// <param name="name">Tensor name (at most 63 UTF-8 bytes).</param>
    /// <param name="ggmlType">ggml type id (see <see cref="GgmlTypes"/>).</param>
    /// <param name="dims">ggml-order dims (ne0 first), 1 to 4 of them. The array is kept, not copied.</param>
    /// <param name="offset">Absolute file offset of the first byte.</param>
    /// <param name="byteSize">Bytes of data.</param>
    public GgufTensorInfo(string name, int ggmlType, long[] dims, long offset, long byteSize)
    {
        Name = name;
        GgmlType = ggmlType;
        Dims = dims;
        Offset = offset;
        ByteSize = byteSize;
    }

    /// <summary>Creates a tensor description of an implemented type.</summary>
    public GgufTensorInfo(string name, DataType type, long[] dims, long offset, long byteSize)
        : this(name, (int)type, dims, offset, byteSize)
    {
    }

    /// <summary>Tensor name ("blk.0.attn_q.weight").</summary>
    public string Name { get; }

    /// <summary>The raw ggml type id as stored in the file; valid even for types the engine does not implement.</summary>
    public int GgmlType { get; }

    /// <summary>ggml-order dims: Dims[0] = row length. Shared with the file: do not modify.</summary>
    public long[] Dims { get; }

    /// <summary>Absolute offset of the data in the file (data section start + the stored relative offset).</summary>
    public long Offset { get; }

    /// <summary>Bytes of data (rows × row bytes).</summary>
    public long ByteSize { get; }

    /// <summary>True when <see cref="Type"/> can be read (the type is one of <see cref="DataType"/>).</summary>
    public bool IsImplementedType => GgmlTypes.IsImplemented(GgmlType);

    /// <summary>
    /// The element type. Throws <see cref="NotSupportedException"/> (naming the tensor and ggml type) for
    /// types the engine does not implement, e.g. Q3_K; check <see cref="IsImplementedType"/> or use
    /// <see cref="GgmlType"/> to avoid that.
    /// </summary>
    public DataType Type => IsImplementedType
        ? (DataType)GgmlType
        : throw new NotSupportedException(
            $"tensor '{Name}' has ggml type {GgmlTypes.NameOf(GgmlType)} ({GgmlType}), which this engine does not implement; " +
            $"supported: {WeightFormats.Names}");

    /// <summary>ggml's name of the type ("q8_0", "q4_K").</summary>
    public string TypeName => GgmlTypes.NameOf(GgmlType);

    /// <summary>Elements per row (Dims[0]).</summary>
    public long RowLength => Dims[0];

    /// <summary>Number of rows: the product of the dims after the first (1 for a 1-D tensor).</summary>
    public long Rows
    {
        get
        {
            long r = 1;
            for (int i = 1; i < Dims.Length; i++)
                r *= Dims[i];
            return r;
        }
    }

    /// <summary>Total elements.</summary>
    public long ElementCount => RowLength * Rows;

    /// <summary>Bytes of one row.</summary>
    public long RowBytes => GgmlTypes.TryGet(GgmlType, out var t) ? RowLength / t.BlockSize * t.BlockBytes : 0;

    /// <inheritdoc/>
    public override string ToString() => $"{Name} {TypeName} [{string.Join(", ", Dims)}] @{Offset} ({ByteSize} B)";
}
