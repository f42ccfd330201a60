using Serving.Abstractions;

namespace Serving.Backends.Vulkan.Kernels;

/// <summary>
/// One storage-buffer binding of a dispatch: bytes [Offset, Offset + Bytes) of a buffer, and whether the op writes
/// them. The stream binds it at an offset aligned down to minStorageBufferOffsetAlignment and tells the shader, in
/// the push constants, where the range starts in 32-bit words; it also tracks the range for barriers.
/// </summary>
internal readonly record struct BufferRange(VulkanBuffer Buffer, long Offset, long Bytes, bool Writes)
{
    /// <summary>A view the op reads.</summary>
    public static BufferRange Read(in TensorView view) => new((VulkanBuffer)view.Buffer, view.Offset, view.ByteLength, false);

    /// <summary>A view the op writes (or reads and writes).</summary>
    public static BufferRange Write(in TensorView view) => new((VulkanBuffer)view.Buffer, view.Offset, view.ByteLength, true);

    /// <summary>A whole prepared weight, read.</summary>
    public static BufferRange Read(VulkanWeight weight) => new(weight.Buffer, weight.Offset, weight.Rows * weight.RowBytes, false);

    /// <summary>Bytes [offset, offset + bytes) of a KV cache's buffer.</summary>
    public static BufferRange Cache(VulkanKvCache cache, long offset, long bytes, bool writes) => new(cache.Buffer, offset, bytes, writes);

    /// <summary>True when the two ranges share a byte of the same buffer.</summary>
    public bool Overlaps(in BufferRange other)
        => ReferenceEquals(Buffer, other.Buffer) && Offset < other.Offset + other.Bytes && other.Offset < Offset + Bytes;
}
