using ILGPU;
using ILGPU.Runtime;
using Serving.Abstractions;

namespace Serving.Backends.Cuda;

/// <summary>Device memory (ILGPU's MemoryBuffer: cuMemAlloc on a GPU, managed memory on the CPU test device), zero-filled
/// when allocated and rounded up to whole words so every view may be read as 32-bit elements.</summary>
internal sealed class CudaBuffer : IDeviceBuffer
{
    private readonly CudaAccelerator _device;
    private MemoryBuffer1D<byte, Stride1D.Dense>? _memory;

    internal CudaBuffer(CudaAccelerator device, MemoryBuffer1D<byte, Stride1D.Dense> memory, long length)
    {
        _device = device;
        _memory = memory;
        Length = length;
    }

    /// <inheritdoc/>
    public IAccelerator Device => _device;

    /// <inheritdoc/>
    public long Length { get; }

    /// <inheritdoc/>
    public bool IsHostMemory => false;

    /// <inheritdoc/>
    public bool IsDisposed => _memory is null;

    /// <summary>The memory; throws <see cref="ObjectDisposedException"/> once disposed.</summary>
    internal MemoryBuffer1D<byte, Stride1D.Dense> Memory
    {
        get
        {
            var m = _memory;
            ObjectDisposedException.ThrowIf(m is null, this);
            return m;
        }
    }

    /// <summary><paramref name="length"/> bytes at <paramref name="offset"/>.</summary>
    internal ArrayView<byte> Bytes(long offset, long length) => Memory.AsRawArrayView(offset, length);

    /// <inheritdoc/>
    public void Dispose()
    {
        var m = Interlocked.Exchange(ref _memory, null);
        if (m is null) return;
        _device.Release(this, m.LengthInBytes);
        m.Dispose();
    }
}
