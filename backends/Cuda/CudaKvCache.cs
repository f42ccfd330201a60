using ILGPU;
using Serving.Abstractions;
using Serving.Backends.Cuda.Kernels;

namespace Serving.Backends.Cuda;

/// <summary>A paged KV cache in one device buffer: per layer a K plane then a V plane, each Blocks · BlockSize slots of
/// one Hkv·Dh row, in f16 (the default: half the bytes attention reads) or f32. Zero-filled when created.</summary>
internal sealed class CudaKvCache : IKvCache
{
    private readonly CudaAccelerator _device;
    private CudaBuffer? _buffer;

    internal CudaKvCache(CudaAccelerator device, KvCacheLayout layout, CudaBuffer buffer)
    {
        _device = device;
        Layout = layout;
        _buffer = buffer;
    }

    /// <inheritdoc/>
    public IAccelerator Device => _device;

    /// <inheritdoc/>
    public KvCacheLayout Layout { get; }

    /// <inheritdoc/>
    public bool IsDisposed => _buffer is null;

    private CudaBuffer Buffer => _buffer ?? throw new ObjectDisposedException(nameof(CudaKvCache));

    /// <summary>The cache as f32 elements (an f32 cache).</summary>
    internal ArrayView<float> F32 => Buffer.Bytes(0, Buffer.Memory.LengthInBytes).Cast<float>();

    /// <summary>The cache as f16 elements (an f16 cache).</summary>
    internal ArrayView<ushort> F16 => Buffer.Bytes(0, Buffer.Memory.LengthInBytes).Cast<ushort>();

    /// <summary>Where layer <paramref name="layer"/>'s planes are.</summary>
    internal KvPlaneShape Plane(int layer)
    {
        long plane = Layout.SlotsPerLayer * Layout.RowElements;
        return new KvPlaneShape
        {
            KOffset = 2L * layer * plane,
            VOffset = (2L * layer + 1) * plane,
            Slots = Layout.SlotsPerLayer,
            RowElements = Layout.RowElements,
            F16 = Layout.Type == DataType.F16 ? 1 : 0,
        };
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        var b = Interlocked.Exchange(ref _buffer, null);
        if (b is null) return;
        _device.Forget(this);
        b.Dispose();
    }
}
