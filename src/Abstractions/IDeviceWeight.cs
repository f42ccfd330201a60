namespace Serving.Abstractions;

/// <summary>
/// A weight matrix [Rows, Cols] (N × K for MatMul, V × D for Embed) prepared by <see cref="IAccelerator.PrepareWeight"/>
/// in whatever layout the backend's kernels stream best (GGUF blocks as they are, repacked, interleaved). Its layout is
/// the backend's own: the contract sees only its logical type and shape. Owned by whoever prepared it; disposing twice is
/// harmless, using a disposed weight throws <see cref="ObjectDisposedException"/>.
/// </summary>
public interface IDeviceWeight : IDisposable
{
    /// <summary>The device that prepared it.</summary>
    IAccelerator Device { get; }

    /// <summary>The logical element type the source had (<see cref="WeightSource.Type"/>).</summary>
    DataType Type { get; }

    /// <summary>Rows (N, or V for an embedding table).</summary>
    int Rows { get; }

    /// <summary>Elements per row (K, or D).</summary>
    int Cols { get; }

    /// <summary>Bytes of device memory this weight holds (0 when it reads the source's host memory in place).</summary>
    long DeviceBytes { get; }

    /// <summary>True when the kernels read the source memory in place (zero copy; the source must outlive the weight).</summary>
    bool ReadsSourceInPlace { get; }

    /// <summary>True once disposed.</summary>
    bool IsDisposed { get; }
}

/// <summary>
/// A weight tensor in host memory as the GGUF file stores it: <see cref="Rows"/> rows of <see cref="Cols"/> elements of
/// <see cref="Type"/>, rows contiguous (row bytes = <see cref="DataTypes.RowBytes"/>(Cols)).
/// </summary>
/// <param name="Name">For messages ("blk.3.ffn_down.weight").</param>
/// <param name="Pointer">First byte in host memory.</param>
/// <param name="Bytes">Bytes from <paramref name="Pointer"/>; must equal Rows · RowBytes(Cols).</param>
/// <param name="Type">Element type (a weight type the device lists in <see cref="IAccelerator.Supports"/>).</param>
/// <param name="Rows">Rows (N or V).</param>
/// <param name="Cols">Elements per row (K or D), a multiple of the type's block size.</param>
/// <param name="Persistent">True when the memory stays valid and unchanged until the weight is disposed (a read-only
/// memory-mapped file): the backend may then read it in place instead of copying. False: the backend has read every
/// byte it needs before <see cref="IAccelerator.PrepareWeight"/> returns (into device memory, or into a staging buffer
/// whose transfer may still be in flight: every stream's later ops see the finished weight).</param>
public readonly record struct WeightSource(string Name, nint Pointer, long Bytes, DataType Type, int Rows, int Cols, bool Persistent)
{
    /// <summary>Bytes one row of the source takes.</summary>
    public long RowBytes => Type.RowBytes(Cols);

    /// <summary>Throws <see cref="ArgumentException"/> unless the fields describe a well-formed tensor.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Type))
            throw new ArgumentException($"PrepareWeight: {Name} has unknown type {(int)Type}", nameof(Type));
        if (Rows <= 0 || Cols <= 0)
            throw new ArgumentOutOfRangeException(nameof(Rows), $"PrepareWeight: {Name} must have positive dimensions, got [{Rows}, {Cols}]");
        if (Type.IsQuantized() && Cols % Type.BlockSize() != 0)
            throw new ArgumentException($"PrepareWeight: {Name} {Type.Name()} rows must be a multiple of {Type.BlockSize()} elements, got {Cols}", nameof(Cols));
        if (Pointer == 0)
            throw new ArgumentException($"PrepareWeight: {Name} has a null pointer", nameof(Pointer));
        long rowBytes = RowBytes;
        if (Bytes < 0 || rowBytes == 0 || Bytes / rowBytes != Rows || Bytes % rowBytes != 0)
            throw new ArgumentException($"PrepareWeight: {Name} is {Bytes} bytes; [{Rows}, {Cols}] {Type.Name()} needs {(long)Rows * rowBytes}", nameof(Bytes));
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} [{Rows}, {Cols}] {Type.Name()}";
}
