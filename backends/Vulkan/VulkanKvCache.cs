using Serving.Abstractions;

namespace Serving.Backends.Vulkan;

/// <summary>
/// A paged KV cache in one storage buffer. Per layer: K for every slot, then V for every slot; a slot's row is
/// <see cref="RowWords"/> 32-bit words. F16 rows hold two halves per word (element 2i in the low half, as
/// packHalf2x16/unpackHalf2x16 place them), padded to a whole word, so no 16-bit storage feature is needed; F32 rows
/// hold one float per word.
/// </summary>
internal sealed class VulkanKvCache : IKvCache
{
    private int _disposed;

    internal VulkanKvCache(VulkanAccelerator owner, VulkanBuffer buffer, KvCacheLayout layout)
    {
        Owner = owner;
        Buffer = buffer;
        Layout = layout;
    }

    /// <summary>Words per row for <paramref name="layout"/>.</summary>
    internal static long WordsPerRow(in KvCacheLayout layout) => layout.Type == DataType.F16 ? (layout.RowElements + 1) / 2 : layout.RowElements;

    /// <summary>Bytes the buffer needs for <paramref name="layout"/>.</summary>
    internal static long BytesFor(in KvCacheLayout layout) => 2L * layout.Layers * layout.SlotsPerLayer * WordsPerRow(layout) * 4;

    /// <summary>The owning accelerator.</summary>
    internal VulkanAccelerator Owner { get; }

    /// <summary>The storage buffer.</summary>
    internal VulkanBuffer Buffer { get; }

    /// <summary>32-bit words per cached row.</summary>
    internal long RowWords => WordsPerRow(Layout);

    /// <summary>Bytes of K (or of V) for one layer.</summary>
    internal long PlaneBytes => Layout.SlotsPerLayer * RowWords * 4;

    /// <summary>Byte offset of layer <paramref name="layer"/>'s K plane.</summary>
    internal long KOffset(int layer) => 2L * layer * PlaneBytes;

    /// <summary>Byte offset of layer <paramref name="layer"/>'s V plane.</summary>
    internal long VOffset(int layer) => KOffset(layer) + PlaneBytes;

    /// <inheritdoc/>
    public IAccelerator Device => Owner;

    /// <inheritdoc/>
    public KvCacheLayout Layout { get; }

    /// <inheritdoc/>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <inheritdoc/>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Buffer.Dispose();
    }
}
