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
    private readonly HashSet<CpuStream> _streams = [];
    private long _allocatedBytes;
    private bool _disposed;

    /// <summary>Opens the device with <paramref name="threads"/> workers (≥ 1).</summary>
    public CpuAccelerator(DeviceDescriptor descriptor, int threads)
    {
        Descriptor = descriptor;
        Pool = new WorkerPool(threads, descriptor.Id);
        EnergyMeter = RaplEnergyMeter.TryOpen();
    }

    /// <inheritdoc/>
    public DeviceDescriptor Descriptor { get; }

    /// <summary>The device id used in error messages ("cpu:0").</summary>
    internal string Id => Descriptor.Id;

    /// <summary>The worker pool all streams of this device share.</summary>
    internal WorkerPool Pool { get; }

    /// <summary>Bytes of native memory this device allocated and has not freed (wrapped memory not counted).</summary>
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
        string operation = $"allocate {bytes} bytes";
        if (bytes > UncheckedAllocationBytes)
        {
            // Refuse before touching memory: zero-filling an overcommitted allocation would get the process killed.
            long free = FreeMemoryBytes;
            if (bytes > free)
                throw new CpuException(Id, operation, CpuException.OutOfMemory, $"only {free} bytes of memory are available");
        }
        byte* memory;
        try
        {
            memory = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), 64);
        }
        catch (OutOfMemoryException e)
        {
            throw new CpuException(Id, operation, CpuException.OutOfMemory, "native allocation failed", e);
        }
        NativeMemory.Clear(memory, (nuint)bytes);
        var buffer = new CpuBuffer(this, memory, bytes, owned: true);
        lock (_gate)
        {
            if (_disposed)
            {
                NativeMemory.AlignedFree(memory);
                throw new ObjectDisposedException(nameof(CpuAccelerator));
            }
            _buffers.Add(buffer);
            _allocatedBytes += bytes;
        }
        return buffer;
    }

    /// <inheritdoc/>
    /// <remarks>Always succeeds for valid arguments: the CPU reads host memory in place.</remarks>
    public bool TryWrapHostMemory(nint pointer, long bytes, out IDeviceBuffer? buffer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (pointer == 0 && bytes > 0)
            throw new ArgumentException("TryWrapHostMemory: null pointer", nameof(pointer));
        var wrapped = new CpuBuffer(this, (byte*)pointer, bytes, owned: false);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _buffers.Add(wrapped);
        }
        buffer = wrapped;
        return true;
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
            var stream = new CpuStream(this);
            _streams.Add(stream);
            return stream;
        }
    }

    /// <inheritdoc/>
    public OpSupport Supports(OpKind op, DataType type)
    {
        if (!Enum.IsDefined(type))
            return OpSupport.No($"unknown data type {(int)type}");
        return op switch
        {
            OpKind.MatMul or OpKind.Embed => WeightFormats.TryGet(type, out _)
                ? OpSupport.Yes
                : OpSupport.No($"{op} weights must be one of {WeightFormats.Names}, not {type.Name()}"),
            OpKind.Copy => OpSupport.Yes,
            OpKind.KvWrite or OpKind.Attention => type == DataType.F32
                ? OpSupport.Yes
                : OpSupport.No($"the CPU KV cache is f32 only (v1), not {type.Name()}"),
            OpKind.RmsNorm or OpKind.Rope or OpKind.SwiGlu or OpKind.Add or OpKind.Argmax => type == DataType.F32
                ? OpSupport.Yes
                : OpSupport.No($"{op} works on f32 activations only, not {type.Name()}"),
            _ => OpSupport.No($"unknown op {op}"),
        };
    }

    /// <inheritdoc/>
    public IReadOnlyList<KernelVariant> GetVariants(OpKind op, DataType type) => Variants.For(op, type);

    /// <summary>The CPU buffer behind <paramref name="buffer"/>; throws unless it is a live buffer of this device.</summary>
    internal CpuBuffer Resolve(IDeviceBuffer? buffer, string op, string name)
    {
        ThrowIfDisposed();
        if (buffer is null)
            throw new ArgumentNullException(name, $"{op}: {name} has no buffer");
        if (buffer is not CpuBuffer cpu || cpu.Owner != this)
            throw new ArgumentException($"{op}: {name} belongs to another device instance ({buffer.Device.Descriptor.Id}), not to this {Id}", name);
        ObjectDisposedException.ThrowIf(cpu.IsDisposed, cpu);
        return cpu;
    }

    /// <summary>Throws ObjectDisposedException after Dispose.</summary>
    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);

    /// <summary>Forgets a buffer its user disposed.</summary>
    internal void OnBufferDisposed(CpuBuffer buffer)
    {
        lock (_gate)
        {
            if (_buffers.Remove(buffer) && buffer.Owned)
                _allocatedBytes -= buffer.Length;
        }
    }

    /// <summary>Forgets a stream its user disposed.</summary>
    internal void OnStreamDisposed(CpuStream stream)
    {
        lock (_gate)
            _streams.Remove(stream);
    }

    /// <summary>Disposes every stream and buffer still open, then stops the workers.</summary>
    public void Dispose()
    {
        CpuBuffer[] buffers;
        CpuStream[] streams;
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            buffers = [.. _buffers];
            streams = [.. _streams];
        }
        foreach (CpuStream s in streams)
            s.Dispose();
        foreach (CpuBuffer b in buffers)
            b.Dispose();
        Pool.Dispose();
    }

    private static void CheckRange(string op, CpuBuffer buffer, long offset, long length)
    {
        if (offset < 0 || offset > buffer.Length || length > buffer.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset),
                $"{op}: {length} bytes at offset {offset} do not fit in a buffer of {buffer.Length} bytes");
    }
}
