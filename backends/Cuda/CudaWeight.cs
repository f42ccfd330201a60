using Serving.Abstractions;
using Serving.Backends.Cuda.Kernels.Formats;

namespace Serving.Backends.Cuda;

/// <summary>A prepared weight: the source's bytes in device memory, in the layout <see cref="WeightLayout"/> chose at load
/// (GGUF blocks with their f16 scales moved to a plane of their own where that makes every body word-aligned).</summary>
internal sealed class CudaWeight : IDeviceWeight
{
    private readonly CudaAccelerator _device;
    private CudaBuffer? _buffer;
    private readonly long _scaleOffset;

    internal CudaWeight(CudaAccelerator device, in WeightSource source, CudaBuffer buffer)
    {
        _device = device;
        _buffer = buffer;
        Type = source.Type;
        Rows = source.Rows;
        Cols = source.Cols;
        DeviceBytes = buffer.Length;
        _scaleOffset = WeightLayout.ScaleOffsetHalves(source);
    }

    /// <inheritdoc/>
    public IAccelerator Device => _device;

    /// <inheritdoc/>
    public DataType Type { get; }

    /// <inheritdoc/>
    public int Rows { get; }

    /// <inheritdoc/>
    public int Cols { get; }

    /// <inheritdoc/>
    public long DeviceBytes { get; }

    /// <inheritdoc/>
    public bool ReadsSourceInPlace => false;

    /// <inheritdoc/>
    public bool IsDisposed => _buffer is null;

    /// <summary>The device memory holding the weight (tests read it back).</summary>
    internal CudaBuffer Storage => _buffer ?? throw new ObjectDisposedException(nameof(CudaWeight));

    /// <summary>The weight as the kernels read it.</summary>
    internal WeightView View
    {
        get
        {
            CudaBuffer b = _buffer ?? throw new ObjectDisposedException(nameof(CudaWeight));
            long bytes = b.Memory.LengthInBytes;
            var raw = b.Bytes(0, bytes);
            return new WeightView { Words = raw.Cast<uint>(), Halves = raw.Cast<ushort>(), ScaleOffset = _scaleOffset, Cols = Cols };
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        var b = Interlocked.Exchange(ref _buffer, null);
        if (b is null) return;
        _device.Forget(this);
        b.Dispose();
    }
}
