using Serving.Abstractions;

namespace Serving.Backends.Vulkan;

/// <summary>
/// A prepared weight: the GGUF rows exactly as the file stores them (quantized blocks included) in one storage buffer,
/// rows contiguous from byte <see cref="Offset"/> (0 for a copy; inside an imported file mapping, where the tensor lies
/// past the buffer's aligned start). Kernels read the blocks directly (no dequantized copy); half and bfloat16 values
/// and quantized bytes are read from 32-bit words, so no 16-bit or 8-bit storage feature is needed.
/// </summary>
internal sealed class VulkanWeight : IDeviceWeight
{
    private int _disposed;

    internal VulkanWeight(VulkanAccelerator owner, VulkanBuffer buffer, long offset, in WeightSource source)
    {
        Owner = owner;
        Buffer = buffer;
        Offset = offset;
        Type = source.Type;
        Rows = source.Rows;
        Cols = source.Cols;
        RowBytes = source.RowBytes;
    }

    /// <summary>The owning accelerator.</summary>
    internal VulkanAccelerator Owner { get; }

    /// <summary>The storage buffer holding the rows.</summary>
    internal VulkanBuffer Buffer { get; }

    /// <summary>Where row 0 starts in <see cref="Buffer"/> (a multiple of 4).</summary>
    internal long Offset { get; }

    /// <summary>Bytes per row (the GGUF row size).</summary>
    internal long RowBytes { get; }

    /// <summary>
    /// Row windows small enough to bind on their own (a binding may span at most <paramref name="maxBytes"/>,
    /// maxStorageBufferRange: 128 MiB on lavapipe), each starting 16 bytes after the previous one's start plus a
    /// multiple of 16: (first row, rows, byte offset in <see cref="Buffer"/>). The dispatcher binds a window from its
    /// start aligned down to minStorageBufferOffsetAlignment, so a window leaves room for that slack when its start may
    /// not be aligned. One window covering every row when the whole weight fits.
    /// </summary>
    internal IEnumerable<(int FirstRow, int Rows, long Offset)> RowWindows(long maxBytes)
    {
        long alignment = Math.Max(4, (long)Owner.Facts.Limits.MinStorageBufferOffsetAlignment);
        // Window starts are Offset + a multiple of 16: aligned (no slack) when Offset is and the alignment is at most 16.
        long slack = Offset % 16 == 0 ? Math.Max(0, alignment - 16) : alignment - 4;
        long rowsPerWindow = Math.Max(1, (maxBytes - slack) / RowBytes);
        // Keep window starts 16 bytes apart (any storage offset alignment up to 16 then holds, and word offsets do).
        while (rowsPerWindow > 1 && rowsPerWindow * RowBytes % 16 != 0) rowsPerWindow--;
        for (long first = 0; first < Rows; first += rowsPerWindow)
            yield return ((int)first, (int)Math.Min(rowsPerWindow, Rows - first), Offset + first * RowBytes);
    }

    /// <inheritdoc/>
    public IAccelerator Device => Owner;

    /// <inheritdoc/>
    public DataType Type { get; }

    /// <inheritdoc/>
    public int Rows { get; }

    /// <inheritdoc/>
    public int Cols { get; }

    /// <inheritdoc/>
    public long DeviceBytes => Buffer.IsImported ? 0 : Buffer.AllocatedBytes;

    /// <inheritdoc/>
    public bool ReadsSourceInPlace => Buffer.IsImported;

    /// <inheritdoc/>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <inheritdoc/>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Buffer.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"vulkan weight [{Rows}, {Cols}] {Type.Name()}";
}
