using Serving.Abstractions;

namespace Serving.Backends.Scalar;

/// <summary>
/// The scalar device. Memory is managed arrays; every op runs when it is recorded, so device-level transfers need no
/// waiting. Thread-safe for allocation, preparation and queries (one lock around the bookkeeping).
/// </summary>
public sealed class ScalarAccelerator : IAccelerator
{
    private readonly object _lock = new();
    private readonly HashSet<IDisposable> _owned = [];
    private readonly DeviceOptions _options;
    private long _usedBytes;
    private bool _disposed;

    internal ScalarAccelerator(DeviceDescriptor descriptor, DeviceOptions options)
    {
        Descriptor = descriptor;
        _options = options;
    }

    /// <inheritdoc/>
    public DeviceDescriptor Descriptor { get; }

    /// <inheritdoc/>
    public long FreeMemoryBytes => Math.Max(0, Descriptor.TotalMemoryBytes - Interlocked.Read(ref _usedBytes));

    /// <inheritdoc/>
    public IEnergyMeter? EnergyMeter => null;

    /// <summary>True once disposed.</summary>
    internal bool IsDisposed => _disposed;

    /// <inheritdoc/>
    public IDeviceBuffer Allocate(long bytes)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        return Own(new ScalarBuffer(this, NewArray(this, bytes, $"allocate {bytes} bytes")), bytes);
    }

    /// <inheritdoc/>
    public IDeviceWeight PrepareWeight(in WeightSource source)
    {
        ThrowIfDisposed();
        source.Validate();
        OpSupport matmul = Supports(new OpQuery(OpKind.MatMul, source.Type, source.Rows, source.Cols));
        OpSupport embed = Supports(new OpQuery(OpKind.Embed, source.Type, source.Rows, source.Cols));
        if (!matmul.Supported && !embed.Supported)
            throw new ArgumentException($"PrepareWeight: {source}: {matmul.Reason}", nameof(source));
        var weight = new ScalarWeight(this, source);
        return Own(weight, weight.DeviceBytes);
    }

    /// <inheritdoc/>
    public IKvCache CreateKvCache(in KvCacheSpec spec)
    {
        ThrowIfDisposed();
        spec.Validate();
        var cache = new ScalarKvCache(this, spec);
        return Own(cache, cache.Bytes);
    }

    /// <inheritdoc/>
    public void Upload(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
    {
        byte[] data = Resolve(nameof(Upload), destination, offset, source.Length);
        source.CopyTo(data.AsSpan(checked((int)offset), source.Length));
    }

    /// <inheritdoc/>
    public void Download(IDeviceBuffer source, long offset, Span<byte> destination)
    {
        byte[] data = Resolve(nameof(Download), source, offset, destination.Length);
        data.AsSpan(checked((int)offset), destination.Length).CopyTo(destination);
    }

    /// <inheritdoc/>
    public IComputeStream CreateStream()
    {
        ThrowIfDisposed();
        return Own(new ScalarStream(this, _options.Reproducible), 0);
    }

    /// <inheritdoc/>
    public OpSupport Supports(in OpQuery query) => Capabilities.Supports(query);

    /// <inheritdoc/>
    public IReadOnlyList<KernelVariant> GetVariants(OpKind op, DataType type) => Capabilities.Variants(op, type);

    /// <summary>Frees everything the device still owns; each object then reports IsDisposed.</summary>
    public void Dispose()
    {
        IDisposable[] owned;
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            owned = [.. _owned];
        }
        foreach (IDisposable o in owned)
            o.Dispose();
    }

    /// <summary>Checks a device-level transfer: a live buffer of this device, the range inside it.</summary>
    private byte[] Resolve(string op, IDeviceBuffer buffer, long offset, long length)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(buffer);
        if (buffer is not ScalarBuffer mine || !ReferenceEquals(mine.Device, this))
            throw new ArgumentException($"{op}: the buffer belongs to another device", nameof(buffer));
        ObjectDisposedException.ThrowIf(mine.IsDisposed, mine);
        if (offset < 0 || offset > mine.Length || length > mine.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"{op}: {length} bytes at offset {offset} do not fit in a buffer of {mine.Length} bytes");
        return mine.Data;
    }

    /// <summary>Throws <see cref="ObjectDisposedException"/> once the device is disposed.</summary>
    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private T Own<T>(T item, long bytes) where T : IDisposable
    {
        lock (_lock)
        {
            if (_disposed)
            {
                item.Dispose();
                ThrowIfDisposed();
            }
            _owned.Add(item);
            _usedBytes += bytes;
        }
        return item;
    }

    /// <summary>Called by an owned object's Dispose.</summary>
    internal void Release(IDisposable item, long bytes)
    {
        lock (_lock)
        {
            if (_owned.Remove(item))
                _usedBytes -= bytes;
        }
    }

    /// <summary>A zero-filled array of <paramref name="bytes"/>; out of memory is an <see cref="AcceleratorException"/>.</summary>
    internal static byte[] NewArray(ScalarAccelerator device, long bytes, string operation)
    {
        if (bytes > Array.MaxLength)
            throw new AcceleratorException(device.Descriptor.Id, operation, 0, $"{bytes} bytes exceed one managed array ({Array.MaxLength})");
        try
        {
            return new byte[bytes];
        }
        catch (OutOfMemoryException e)
        {
            throw new AcceleratorException(device.Descriptor.Id, operation, 0, "out of memory", e);
        }
    }
}
