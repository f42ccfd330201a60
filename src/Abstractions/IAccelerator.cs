namespace Serving.Abstractions;

/// <summary>
/// One opened device. Owns its buffers' memory, its prepared weights, its KV caches and its streams. Thread-safe for
/// allocation, preparation and queries; each <see cref="IComputeStream"/> is used by one caller at a time. Disposing
/// frees everything it still owns. Device faults (out of memory, a failed submit, a lost device) throw
/// <see cref="AcceleratorException"/>; bad arguments throw <see cref="ArgumentException"/> (docs/backends.md).
/// </summary>
public interface IAccelerator : IDisposable
{
    /// <summary>Who this device is.</summary>
    DeviceDescriptor Descriptor { get; }

    /// <summary>Bytes currently free for new buffers (best effort: the memory budget where the API reports one).</summary>
    long FreeMemoryBytes { get; }

    /// <summary>The device's energy counter, or null when it has none (never an estimate).</summary>
    IEnergyMeter? EnergyMeter { get; }

    /// <summary>Allocates <paramref name="bytes"/> of device memory, zero-filled. Throws <see cref="AcceleratorException"/> when out of memory.</summary>
    IDeviceBuffer Allocate(long bytes);

    /// <summary>
    /// Places a weight tensor on the device in the layout the backend's kernels stream best: repacked at load,
    /// uploaded through staging on discrete GPUs (the transfer may still run when this returns; every stream's later
    /// ops see it finished), read in place when <see cref="WeightSource.Persistent"/> and the device reads host memory.
    /// One copy of the weights in memory. Throws <see cref="ArgumentException"/> for a malformed source or a type
    /// <see cref="Supports"/> refuses for MatMul and Embed, <see cref="AcceleratorException"/> when out of memory.
    /// </summary>
    IDeviceWeight PrepareWeight(in WeightSource source);

    /// <summary>Creates a zero-filled paged KV cache (f16 where the device stores it, else f32; see <see cref="KvCacheSpec.PreferredType"/>).</summary>
    IKvCache CreateKvCache(in KvCacheSpec spec);

    /// <summary>Copies host bytes into the buffer at <paramref name="offset"/>, after all work recorded so far on every stream has finished with it.</summary>
    void Upload(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source);

    /// <summary>Waits for all recorded work, then copies bytes from the buffer at <paramref name="offset"/> to the host.</summary>
    void Download(IDeviceBuffer source, long offset, Span<byte> destination);

    /// <summary>Creates a stream of ops on this device.</summary>
    IComputeStream CreateStream();

    /// <summary>Whether the device runs <paramref name="query"/> (op, type, shape), and if not, why (a sentence naming
    /// what is missing: "no 16-bit storage and K not a multiple of 4").</summary>
    OpSupport Supports(in OpQuery query);

    /// <summary>The implementations of <paramref name="op"/> for <paramref name="type"/>; the first is the default and
    /// applies to every shape. Empty when the op or type is unsupported.</summary>
    IReadOnlyList<KernelVariant> GetVariants(OpKind op, DataType type);
}
