using System.Runtime.InteropServices;
using Serving.Abstractions;
using Serving.Backends.Cpu.Interop;
using Serving.Backends.Cpu.Kernels;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu;

/// <summary>
/// The CPU as one device: buffers in native host memory, a persistent worker pool over the configured threads,
/// streams that run ops eagerly on that pool. Thread-safe for allocation and queries; disposing frees every buffer
/// and stream still open.
/// </summary>
internal sealed unsafe class CpuAccelerator : IAccelerator
{
    /// <summary>Allocations up to this size skip the available-memory check (reading /proc/meminfo costs more).</summary>
    private const long UncheckedAllocationBytes = 64L << 20;

    private readonly object _gate = new();
    private readonly HashSet<CpuBuffer> _buffers = [];
    private readonly HashSet<CpuWeight> _weights = [];
    private readonly HashSet<CpuKvCache> _caches = [];
    private readonly HashSet<CpuStream> _streams = [];
    private long _allocatedBytes;
    private bool _disposed;

    /// <summary>Opens the device with <paramref name="threads"/> workers (≥ 1); <paramref name="reproducible"/> goes to every stream.</summary>
    public CpuAccelerator(DeviceDescriptor descriptor, int threads, bool reproducible)
    {
        Descriptor = descriptor;
        Reproducible = reproducible;
        Pool = new WorkerPool(threads, descriptor.Id);
        EnergyMeter = RaplEnergyMeter.TryOpen();
    }

    /// <inheritdoc/>
    public DeviceDescriptor Descriptor { get; }

    /// <summary>The device id used in error messages ("cpu:0").</summary>
    internal string Id => Descriptor.Id;

    /// <summary>DeviceOptions.Reproducible: streams refuse variants that are not batch-invariant.</summary>
    internal bool Reproducible { get; }

    /// <summary>The worker pool all streams of this device share.</summary>
    internal WorkerPool Pool { get; }

    /// <summary>Bytes of native memory this device allocated and has not freed (buffers, weight copies, KV caches; weights read in place not counted).</summary>
    internal long AllocatedBytes => Interlocked.Read(ref _allocatedBytes);

    /// <inheritdoc/>
    /// <remarks>The system's available memory now (/proc/meminfo MemAvailable, which already reflects this device's
    /// zero-filled buffers), else total memory less what this device allocated.</remarks>
    public long FreeMemoryBytes
        => CpuInfo.AvailableMemoryBytes() ?? Math.Max(0, Descriptor.TotalMemoryBytes - AllocatedBytes);

    /// <inheritdoc/>
    public IEnergyMeter? EnergyMeter { get; }

    /// <inheritdoc/>
    public IDeviceBuffer Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        ThrowIfDisposed();
        byte* memory = AllocateNative(bytes, $"allocate {bytes} bytes", clear: true);
        var buffer = new CpuBuffer(this, memory, bytes);
        Track(_buffers, buffer, bytes, memory, null);
        return buffer;
    }

    /// <inheritdoc/>
    /// <remarks>The weight keeps the GGUF block layout (the kernels stream it as it is). A persistent source (a
    /// read-only memory-mapped file) is read in place, with no copy; any other source is copied once into 64-byte
    /// aligned native memory before this returns.</remarks>
    public IDeviceWeight PrepareWeight(in WeightSource source)
    {
        ThrowIfDisposed();
        source.Validate();
        if (!WeightFormats.TryGet(source.Type, out WeightFormat? format))
            throw new ArgumentException($"PrepareWeight: {source}: {Id} computes with {WeightFormats.Names} weights, not {source.Type.Name()}", nameof(source));
        CpuWeight weight;
        if (source.Persistent)
        {
            weight = new CpuWeight(this, source, format, (byte*)source.Pointer, owned: false);
            Track(_weights, weight, 0, null, null);
            return weight;
        }
        byte* copy = AllocateNative(source.Bytes, $"prepare weight {source}", clear: false);
        Buffer.MemoryCopy((void*)source.Pointer, copy, source.Bytes, source.Bytes);
        weight = new CpuWeight(this, source, format, copy, owned: true);
        Track(_weights, weight, source.Bytes, copy, null);
        return weight;
    }

    /// <inheritdoc/>
    /// <remarks>Stores the preferred type: the CPU keeps f16 (half the bytes attention reads, widened in registers)
    /// and f32 alike.</remarks>
    public IKvCache CreateKvCache(in KvCacheSpec spec)
    {
        ThrowIfDisposed();
        spec.Validate();
        var layout = new KvCacheLayout(spec.Layers, spec.Blocks, spec.BlockSize, spec.KvHeads, spec.HeadDim, spec.PreferredType);
        long bytes = layout.Bytes / 2;
        string operation = $"create a KV cache of 2 × {bytes} bytes ({layout})";
        byte* k = AllocateNative(bytes, operation, clear: true);
        byte* v;
        try
        {
            v = AllocateNative(bytes, operation, clear: true);
        }
        catch
        {
            PageMemory.Free(k);
            throw;
        }
        var cache = new CpuKvCache(this, layout, k, v);
        Track(_caches, cache, 2 * bytes, k, v);
        return cache;
    }

    /// <inheritdoc/>
    public void Upload(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
    {
        CpuBuffer buffer = Resolve(destination, "Upload", nameof(destination));
        CheckRange("Upload", buffer, offset, source.Length);
        source.CopyTo(new Span<byte>(buffer.Pointer + offset, source.Length));
    }

    /// <inheritdoc/>
    public void Download(IDeviceBuffer source, long offset, Span<byte> destination)
    {
        CpuBuffer buffer = Resolve(source, "Download", nameof(source));
        CheckRange("Download", buffer, offset, destination.Length);
        new ReadOnlySpan<byte>(buffer.Pointer + offset, destination.Length).CopyTo(destination);
    }

    /// <inheritdoc/>
    public IComputeStream CreateStream()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var stream = new CpuStream(this, Reproducible);
            _streams.Add(stream);
            return stream;
        }
    }

    /// <inheritdoc/>
    public OpSupport Supports(in OpQuery query)
    {
        OpKind op = query.Op;
        DataType type = query.Type;
        if (!Enum.IsDefined(op))
            return OpSupport.No($"unknown op {(int)op}");
        if (!Enum.IsDefined(type))
            return OpSupport.No($"unknown data type {(int)type}");
        if (query.Rows < 0 || query.Cols < 0 || query.Heads < 0 || query.KvHeads < 0 || query.HeadDim < 0)
            return OpSupport.No($"{query}: a dimension is negative");
        switch (op)
        {
            case OpKind.MatMul or OpKind.Embed:
                if (!WeightFormats.TryGet(type, out _))
                    return OpSupport.No($"{op} weights must be one of {WeightFormats.Names}, not {type.Name()}");
                if (type.IsQuantized() && query.Cols % type.BlockSize() != 0)
                    return OpSupport.No($"{query}: K = {query.Cols} is not a multiple of {type.Name()}'s {type.BlockSize()}-element block");
                return OpSupport.Yes;
            case OpKind.KvWrite or OpKind.Attention:
                if (type is not (DataType.F16 or DataType.F32))
                    return OpSupport.No($"the CPU KV cache stores f16 or f32, not {type.Name()}");
                if (op == OpKind.Attention && query.Heads > 0 && query.KvHeads > 0 && query.Heads % query.KvHeads != 0)
                    return OpSupport.No($"{query}: H = {query.Heads} is not a multiple of Hkv = {query.KvHeads}");
                return OpSupport.Yes;
            case OpKind.Copy:
                return OpSupport.Yes;
            default:
                return type == DataType.F32
                    ? OpSupport.Yes
                    : OpSupport.No($"{op} works on f32 only, not {type.Name()}");
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<KernelVariant> GetVariants(OpKind op, DataType type) => Variants.For(op, type);

    /// <summary>The CPU buffer behind <paramref name="buffer"/>; throws unless it is a live buffer of this device.</summary>
    internal CpuBuffer Resolve(IDeviceBuffer? buffer, string op, string name)
    {
        ThrowIfDisposed();
        if (buffer is null)
            throw new ArgumentNullException(name, $"{op}: {name} has no buffer");
        if (buffer is not CpuBuffer cpu || cpu.Device != this)
            throw new ArgumentException($"{op}: {name} belongs to another device instance ({buffer.Device.Descriptor.Id}), not to this {Id}", name);
        ObjectDisposedException.ThrowIf(cpu.IsDisposed, cpu);
        return cpu;
    }

    /// <summary>Throws ObjectDisposedException after Dispose.</summary>
    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);

    /// <summary>Forgets a buffer its user disposed.</summary>
    internal void OnBufferDisposed(CpuBuffer buffer) => Forget(_buffers, buffer, buffer.Length);

    /// <summary>Forgets a weight its user disposed.</summary>
    internal void OnWeightDisposed(CpuWeight weight) => Forget(_weights, weight, weight.DeviceBytes);

    /// <summary>Forgets a KV cache its user disposed.</summary>
    internal void OnKvCacheDisposed(CpuKvCache cache) => Forget(_caches, cache, 2 * cache.TensorBytes);

    /// <summary>Forgets a stream its user disposed.</summary>
    internal void OnStreamDisposed(CpuStream stream)
    {
        lock (_gate)
            _streams.Remove(stream);
    }

    /// <summary>Disposes every stream, buffer, weight and KV cache still open, then stops the workers.</summary>
    public void Dispose()
    {
        CpuBuffer[] buffers;
        CpuWeight[] weights;
        CpuKvCache[] caches;
        CpuStream[] streams;
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            buffers = [.. _buffers];
            weights = [.. _weights];
            caches = [.. _caches];
            streams = [.. _streams];
        }
        foreach (CpuStream s in streams)
            s.Dispose();
        foreach (CpuBuffer b in buffers)
            b.Dispose();
        foreach (CpuWeight w in weights)
            w.Dispose();
        foreach (CpuKvCache c in caches)
            c.Dispose();
        Pool.Dispose();
    }

    /// <summary>
    /// 64-byte aligned native memory of <paramref name="bytes"/> (zero-filled when <paramref name="clear"/>); throws
    /// <see cref="CpuException"/> (out of memory) before touching memory the system does not have.
    /// </summary>
    private byte* AllocateNative(long bytes, string operation, bool clear)
    {
        if (bytes > UncheckedAllocationBytes)
        {
            // Refuse before touching memory: zero-filling an overcommitted allocation would get the process killed.
            long free = FreeMemoryBytes;
            if (bytes > free)
                throw new CpuException(Id, operation, CpuException.OutOfMemory, $"only {free} bytes of memory are available");
        }
        try
        {
            // Large blocks are fresh mappings: zero without a write, so a cleared KV cache or scratch buffer becomes
            // resident only where a run writes it.
            return PageMemory.Allocate(bytes, clear);
        }
        catch (OutOfMemoryException e)
        {
            throw new CpuException(Id, operation, CpuException.OutOfMemory, "native allocation failed", e);
        }
    }

    /// <summary>Registers a new object (so Dispose frees it); frees its memory and throws when the device was disposed meanwhile.</summary>
    private void Track<T>(HashSet<T> set, T item, long bytes, byte* memory, byte* memory2)
    {
        lock (_gate)
        {
            if (!_disposed)
            {
                set.Add(item);
                _allocatedBytes += bytes;
                return;
            }
        }
        if (memory != null)
            PageMemory.Free(memory);
        if (memory2 != null)
            PageMemory.Free(memory2);
        throw new ObjectDisposedException(nameof(CpuAccelerator));
    }

    private void Forget<T>(HashSet<T> set, T item, long bytes)
    {
        lock (_gate)
        {
            if (set.Remove(item))
                _allocatedBytes -= bytes;
        }
    }

    private static void CheckRange(string op, CpuBuffer buffer, long offset, long length)
    {
        if (offset < 0 || offset > buffer.Length || length > buffer.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset),
                $"{op}: {length} bytes at offset {offset} do not fit in a buffer of {buffer.Length} bytes");
    }
}
