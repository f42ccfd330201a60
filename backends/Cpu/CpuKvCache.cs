using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Backends.Cpu;

/// <summary>
/// A paged KV cache in native memory: K and V each hold (layer, slot, Hkv·Dh) rows of the layout's type (f16: IEEE half
/// bits, f32), slot = block · BlockSize + offset, so a block's rows are consecutive and attention streams them.
/// Zero-filled at creation; 64-byte aligned.
/// </summary>
internal sealed unsafe class CpuKvCache : IKvCache
{
    private readonly CpuAccelerator _owner;
    private byte* _k, _v;
    private int _disposed;

    /// <summary>Takes ownership of <paramref name="k"/> and <paramref name="v"/>, each <see cref="TensorBytes"/> long.</summary>
    internal CpuKvCache(CpuAccelerator owner, KvCacheLayout layout, byte* k, byte* v)
    {
        _owner = owner;
        Layout = layout;
        _k = k;
        _v = v;
    }

    /// <inheritdoc/>
    public IAccelerator Device => _owner;

    /// <inheritdoc/>
    public KvCacheLayout Layout { get; }

    /// <summary>Bytes of K (and of V).</summary>
    internal long TensorBytes => Layout.Bytes / 2;

    /// <summary>Bytes of one cached row (Hkv·Dh elements).</summary>
    internal long RowBytes => Layout.Type.RowBytes(Layout.RowElements);

    /// <inheritdoc/>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Row 0 of K. Throws ObjectDisposedException after Dispose.</summary>
    internal byte* K
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return _k;
        }
    }

    /// <summary>Row 0 of V. Throws ObjectDisposedException after Dispose.</summary>
    internal byte* V
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return _v;
        }
    }

    /// <summary>Frees K and V (once) and tells the accelerator.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Interop.PageMemory.Free(_k);
        Interop.PageMemory.Free(_v);
        _k = _v = null;
        _owner.OnKvCacheDisposed(this);
    }
}
