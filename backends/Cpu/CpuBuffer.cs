using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Backends.Cpu;

/// <summary>
/// CPU memory: either owned (64-byte aligned native memory from <see cref="CpuAccelerator.Allocate"/>, zero-filled,
/// freed on Dispose) or wrapped (a caller's host memory, e.g. a memory-mapped weight file, never freed here).
/// </summary>
internal sealed unsafe class CpuBuffer : IDeviceBuffer
{
    private readonly CpuAccelerator _owner;
    private byte* _pointer;
    private int _disposed;

    /// <summary>Wraps <paramref name="pointer"/>; <paramref name="owned"/> says whether Dispose frees it.</summary>
    internal CpuBuffer(CpuAccelerator owner, byte* pointer, long length, bool owned)
    {
        _owner = owner;
        _pointer = pointer;
        Length = length;
        Owned = owned;
    }

    /// <inheritdoc/>
    public IAccelerator Device => _owner;

    /// <summary>The accelerator that created this buffer.</summary>
    internal CpuAccelerator Owner => _owner;

    /// <inheritdoc/>
    public long Length { get; }

    /// <summary>True for wrapped host memory (zero-copy); false for memory this device allocated.</summary>
    public bool IsHostMemory => !Owned;

    /// <summary>True when Dispose frees the memory.</summary>
    internal bool Owned { get; }

    /// <summary>True once disposed (by its user or by the accelerator's Dispose).</summary>
    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Start of the memory. Throws ObjectDisposedException after Dispose.</summary>
    internal byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return _pointer;
        }
    }

    /// <summary>Frees owned memory (once) and tells the accelerator.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        if (Owned)
            NativeMemory.AlignedFree(_pointer);
        _pointer = null;
        _owner.OnBufferDisposed(this);
    }
}
