using Serving.Abstractions;

namespace Serving.Backends.Scalar;

/// <summary>
/// The paged KV cache: per layer and slot, one k row then one v row of Hkv·Dh elements, stored as f32 or f16
/// (whichever the spec prefers; the scalar device keeps both). Zero-filled at creation.
/// </summary>
public sealed class ScalarKvCache : IKvCache
{
    private readonly ScalarAccelerator _device;
    private float[]? _f32;
    private Half[]? _f16;
    private bool _disposed;

    internal ScalarKvCache(ScalarAccelerator device, in KvCacheSpec spec)
    {
        _device = device;
        Layout = new KvCacheLayout(spec.Layers, spec.Blocks, spec.BlockSize, spec.KvHeads, spec.HeadDim, spec.PreferredType);
        long elements = 2L * Layout.RowElements * Layout.SlotsPerLayer * Layout.Layers;
        if (elements > Array.MaxLength)
            throw new AcceleratorException(device.Descriptor.Id, "CreateKvCache", 0, $"{elements} elements exceed one managed array");
        try
        {
            if (Layout.Type == DataType.F32) _f32 = new float[elements];
            else _f16 = new Half[elements];
        }
        catch (OutOfMemoryException e)
        {
            throw new AcceleratorException(device.Descriptor.Id, "CreateKvCache", 0, $"out of memory for {Layout.Bytes} bytes", e);
        }
    }

    /// <inheritdoc/>
    public IAccelerator Device => _device;

    /// <inheritdoc/>
    public KvCacheLayout Layout { get; }

    /// <inheritdoc/>
    public bool IsDisposed => _disposed;

    /// <summary>Bytes held.</summary>
    internal long Bytes => Layout.Bytes;

    /// <summary>Index of element 0 of the k (<paramref name="value"/> false) or v row of a slot of a layer.</summary>
    private long RowStart(int layer, long slot, bool value)
        => ((layer * Layout.SlotsPerLayer + slot) * 2 + (value ? 1 : 0)) * Layout.RowElements;

    /// <summary>Stores <paramref name="row"/> rounded to the cache type (f16: nearest, ties to even, overflow to ±∞).</summary>
    internal void Write(int layer, long slot, bool value, ReadOnlySpan<float> row)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long start = RowStart(layer, slot, value);
        for (int i = 0; i < row.Length; i++)
        {
            if (_f32 is not null) _f32[start + i] = row[i];
            else _f16![start + i] = (Half)row[i];
        }
    }

    /// <summary>Element <paramref name="i"/> of a cached row, widened to f32 (exact).</summary>
    internal float Read(int layer, long slot, bool value, int i)
    {
        long at = RowStart(layer, slot, value) + i;
        return _f32 is not null ? _f32[at] : (float)_f16![at];
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _f32 = null;
        _f16 = null;
        _device.Release(this, Bytes);
    }
}
