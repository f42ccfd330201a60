using System.Runtime.InteropServices;

namespace Serving.Backends.Cpu.Threading;

/// <summary>
/// Grow-only, 64-byte aligned native scratch memory owned by one stream (quantized activations, converted weight
/// tiles, attention scores). It grows only when a step is larger than any before, so steady-state decode
/// allocates nothing. Contents are undefined between uses.
/// </summary>
internal sealed unsafe class NativeScratch : IDisposable
{
    private byte* _memory;
    private long _capacity;

    /// <summary>Returns at least <paramref name="bytes"/> bytes; invalidates pointers returned earlier. Throws OutOfMemoryException.</summary>
    public byte* Ensure(long bytes)
    {
        ObjectDisposedException.ThrowIf(_capacity < 0, this);
        if (bytes <= _capacity)
            return _memory;
        long size = (bytes + 65535) & ~65535L;
        byte* fresh = (byte*)NativeMemory.AlignedAlloc((nuint)size, 64);
        if (_memory != null)
            NativeMemory.AlignedFree(_memory);
        _memory = fresh;
        _capacity = size;
        return _memory;
    }

    /// <summary>Bytes held now.</summary>
    public long Capacity => Math.Max(0, _capacity);

    /// <summary>Frees the memory.</summary>
    public void Dispose()
    {
        if (_memory != null)
            NativeMemory.AlignedFree(_memory);
        _memory = null;
        _capacity = -1;
    }
}
