namespace Serving.Abstractions;

/// <summary>
/// A region of memory a device can compute on. Created by <see cref="IAccelerator.Allocate"/> or
/// <see cref="IAccelerator.TryWrapHostMemory"/>; disposed by whoever created it. Disposing twice is harmless;
/// using a disposed buffer throws <see cref="ObjectDisposedException"/>.
/// </summary>
public interface IDeviceBuffer : IDisposable
{
    /// <summary>The device that owns this buffer.</summary>
    IAccelerator Device { get; }

    /// <summary>Size in bytes.</summary>
    long Length { get; }

    /// <summary>True when the memory is host memory the device reads in place (zero-copy mapping).</summary>
    bool IsHostMemory { get; }
}
