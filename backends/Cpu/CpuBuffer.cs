using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Backends.Cpu;

/// <summary>
/// CPU memory from <see cref="CpuAccelerator.Allocate"/>: 64-byte aligned native memory, zero-filled (large buffers are mapped pages, resident once written), freed on Dispose.
/// </summary>
internal sealed unsafe class CpuBuffer : IDeviceBuffer
{
    private readonly CpuAccelerator _owner;
    private byte* _pointer;
    private int _disposed;

    /// <summary>Takes ownership of <paramref name="pointer"/> (from Interop.PageMemory.Allocate).</summary>
    internal CpuBuffer(CpuAccelerator owner, byte* pointer, long length)
    {
        _owner = owner;
        _pointer = pointer;
        Length = length;
    }

    /// <inheritdoc/>
    public IAccelerator Device => _owner;

    /// <inheritdoc/>
    public long Length { get; }

    /// <summary>Always true: the CPU's memory is the host's.</summary>
    public bool IsHostMemory => true;

    /// <inheritdoc/>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Start of the memory. Throws ObjectDisposedException after Dispose.</summary>
    internal byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return _pointer;
        }
    }

    /// <summary>Frees the memory (once) and tells the accelerator.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Interop.PageMemory.Free(_pointer);
        _pointer = null;
        _owner.OnBufferDisposed(this);
    }
}
