using Serving.Abstractions;

namespace Serving.Backends.Scalar;

/// <summary>Device memory of the scalar device: a zero-filled managed array the host can read and write.</summary>
public sealed class ScalarBuffer : IDeviceBuffer
{
    private readonly ScalarAccelerator _device;
    private byte[]? _data;

    internal ScalarBuffer(ScalarAccelerator device, byte[] data)
    {
        _device = device;
        _data = data;
        Length = data.LongLength;
    }

    /// <inheritdoc/>
    public IAccelerator Device => _device;

    /// <inheritdoc/>
    public long Length { get; }

    /// <inheritdoc/>
    public bool IsHostMemory => true;

    /// <inheritdoc/>
    public bool IsDisposed => _data is null;

    /// <summary>The bytes; throws <see cref="ObjectDisposedException"/> once disposed.</summary>
    internal byte[] Data => _data ?? throw new ObjectDisposedException(nameof(ScalarBuffer));

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_data is null) return;
        _data = null;
        _device.Release(this, Length);
    }
}
