using Serving.Abstractions;

namespace Serving.Backends.Scalar;

/// <summary>
/// A prepared weight: the GGUF rows as they are, either read in place from a persistent source (zero copy: the scalar
/// device reads host memory) or copied into a managed array. Kernels decode one row at a time (Kernels/Dequantize.cs).
/// </summary>
public sealed unsafe class ScalarWeight : IDeviceWeight
{
    private readonly ScalarAccelerator _device;
    private readonly byte* _source;
    private byte[]? _copy;
    private bool _disposed;

    internal ScalarWeight(ScalarAccelerator device, in WeightSource source)
    {
        _device = device;
        Type = source.Type;
        Rows = source.Rows;
        Cols = source.Cols;
        RowBytes = source.RowBytes;
        if (source.Persistent)
        {
            _source = (byte*)source.Pointer;
            ReadsSourceInPlace = true;
        }
        else
        {
            // Read every byte now: the caller may free the source as soon as PrepareWeight returns.
            _copy = ScalarAccelerator.NewArray(device, source.Bytes, "PrepareWeight " + source.Name);
            new ReadOnlySpan<byte>((void*)source.Pointer, checked((int)source.Bytes)).CopyTo(_copy);
        }
    }

    /// <inheritdoc/>
    public IAccelerator Device => _device;

    /// <inheritdoc/>
    public DataType Type { get; }

    /// <inheritdoc/>
    public int Rows { get; }

    /// <inheritdoc/>
    public int Cols { get; }

    /// <summary>Bytes of one GGUF row.</summary>
    internal long RowBytes { get; }

    /// <inheritdoc/>
    public long DeviceBytes => ReadsSourceInPlace ? 0 : RowBytes * Rows;

    /// <inheritdoc/>
    public bool ReadsSourceInPlace { get; }

    /// <inheritdoc/>
    public bool IsDisposed => _disposed;

    /// <summary>The GGUF bytes of row <paramref name="row"/> (0 ≤ row &lt; Rows; the caller checks).</summary>
    internal ReadOnlySpan<byte> Row(int row)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int bytes = checked((int)RowBytes);
        return ReadsSourceInPlace
            ? new ReadOnlySpan<byte>(_source + RowBytes * row, bytes)
            : new ReadOnlySpan<byte>(_copy, checked((int)(RowBytes * row)), bytes);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _copy = null;
        _device.Release(this, DeviceBytes);
    }
}
