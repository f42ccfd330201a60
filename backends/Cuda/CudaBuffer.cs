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

    // ILGPU's CopyFromCPU/CopyToCPU(stream, ref T, length) take "the base address of the pinned CPU buffer": they turn the
    // reference into a raw pointer (Unsafe.AsPointer) without pinning it. A span over a managed array is not pinned, so a
    // garbage collection between that and the end of the copy (on any thread; on a GPU the driver copies in native code,
    // where the runtime does not stop a collection) moves the array, and the copy reads its old place (stale bytes
    // uploaded) or writes there (a download that leaves the caller's array as it was). Issue 9's intermittent zero
    // outputs and changed guard bytes. Every host copy goes through these two, which pin the span until the copy is done.

    /// <summary>Copies <paramref name="source"/> to <paramref name="offset"/> and waits for the copy, ordered after the work
    /// queued on <paramref name="stream"/>; the span is pinned throughout.</summary>
    internal unsafe void CopyFromHost(AcceleratorStream stream, long offset, ReadOnlySpan<byte> source)
    {
        if (source.IsEmpty) return;
        ArrayView<byte> target = Bytes(offset, source.Length);
        fixed (byte* pinned = source)
            target.CopyFromCPU(stream, ref *pinned, source.Length);
    }

    /// <summary>Copies the bytes at <paramref name="offset"/> into <paramref name="destination"/> and waits for the copy,
    /// ordered after the work queued on <paramref name="stream"/>; the span is pinned throughout.</summary>
    internal unsafe void CopyToHost(AcceleratorStream stream, long offset, Span<byte> destination)
    {
        if (destination.IsEmpty) return;
        ArrayView<byte> source = Bytes(offset, destination.Length);
        fixed (byte* pinned = destination)
            source.CopyToCPU(stream, ref *pinned, destination.Length);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        var m = Interlocked.Exchange(ref _memory, null);
        if (m is null) return;
        _device.Release(this, m.LengthInBytes);
        m.Dispose();
    }
}
