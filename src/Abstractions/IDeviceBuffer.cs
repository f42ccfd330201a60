namespace Serving.Abstractions;

/// <summary>
/// A region of memory a device can compute on, created by <see cref="IAccelerator.Allocate"/> and disposed by whoever
/// created it. Disposing twice is harmless; using a disposed buffer throws <see cref="ObjectDisposedException"/>.
/// </summary>
public interface IDeviceBuffer : IDisposable
{
    /// <summary>The device that owns this buffer.</summary>
    IAccelerator Device { get; }

    /// <summary>Size in bytes.</summary>
    long Length { get; }

    /// <summary>True when the host can read and write the memory directly (unified memory, host-visible device memory, the CPU).</summary>
    bool IsHostMemory { get; }

    /// <summary>True once disposed (by its user or by the device's Dispose).</summary>
    bool IsDisposed { get; }
}
