namespace Serving.Abstractions;

/// <summary>
/// One opened device. Owns its buffers' memory and its streams. Thread-safe for allocation and for
/// querying; each <see cref="IComputeStream"/> is used by one caller at a time. Disposing frees every
/// buffer and stream it still owns.
/// </summary>
public interface IAccelerator : IDisposable
{
    /// <summary>Who this device is.</summary>
    DeviceDescriptor Descriptor { get; }

    /// <summary>Bytes currently free for new buffers (best effort; a hint for sizing the KV cache).</summary>
    long FreeMemoryBytes { get; }

    /// <summary>The device's energy counter, or null when it has none (never an estimate).</summary>
    IEnergyMeter? EnergyMeter { get; }

    /// <summary>Allocates <paramref name="bytes"/> of device memory, zero-filled. Throws <see cref="AcceleratorException"/> when out of memory.</summary>
    IDeviceBuffer Allocate(long bytes);

    /// <summary>
    /// Makes host memory (e.g. a memory-mapped weight file) usable as a buffer without copying, where the device
    /// can read host memory in place. Returns false when it cannot; the caller then allocates and uploads.
    /// The caller keeps the memory valid until the returned buffer is disposed.
    /// </summary>
    bool TryWrapHostMemory(nint pointer, long bytes, out IDeviceBuffer? buffer);

    /// <summary>Copies host bytes into the buffer at <paramref name="offset"/>; ordered after previously recorded work.</summary>
    void Upload(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source);

    /// <summary>Waits for recorded work, then copies bytes from the buffer at <paramref name="offset"/> to the host.</summary>
    void Download(IDeviceBuffer source, long offset, Span<byte> destination);

    /// <summary>Creates a stream of ops on this device.</summary>
    IComputeStream CreateStream();

    /// <summary>Whether <paramref name="op"/> runs with weights (or data) of <paramref name="type"/>, and if not, why.</summary>
    OpSupport Supports(OpKind op, DataType type);

    /// <summary>The implementations of <paramref name="op"/> for <paramref name="type"/>; the first is the default.</summary>
    IReadOnlyList<KernelVariant> GetVariants(OpKind op, DataType type);
}
