using Serving.Abstractions;

namespace Serving.Backends.Vulkan;

/// <summary>
/// A prepared weight: the GGUF rows exactly as the file stores them (quantized blocks included) in one storage buffer,
/// rows contiguous from byte 0. Kernels read the blocks directly (no dequantized copy); half and bfloat16 values and
/// quantized bytes are read from 32-bit words, so no 16-bit or 8-bit storage feature is needed.
/// </summary>
internal sealed class VulkanWeight : IDeviceWeight
{
    private int _disposed;

    internal VulkanWeight(VulkanAccelerator owner, VulkanBuffer buffer, in WeightSource source)
    {
        Owner = owner;
        Buffer = buffer;
        Type = source.Type;
        Rows = source.Rows;
        Cols = source.Cols;
        RowBytes = source.RowBytes;
    }

    /// <summary>The owning accelerator.</summary>
    internal VulkanAccelerator Owner { get; }

    /// <summary>The storage buffer holding the rows.</summary>
    internal VulkanBuffer Buffer { get; }

    /// <summary>Bytes per row (the GGUF row size).</summary>
    internal long RowBytes { get; }

    /// <summary>
    /// Row windows of at most <paramref name="maxBytes"/> bytes (a binding may span at most maxStorageBufferRange, 128 MiB
    /// on lavapipe) that start on a 16-byte boundary, so each window can be bound on its own: (first row, rows, byte offset).
    /// One window covering every row when the whole weight fits.
    /// </summary>
    internal IEnumerable<(int FirstRow, int Rows, long Offset)> RowWindows(long maxBytes)
    {
        long rowsPerWindow = Math.Max(1, maxBytes / RowBytes);
        // Keep window starts 16-byte aligned (any storage offset alignment up to 16 then holds, and word offsets do).
        while (rowsPerWindow > 1 && rowsPerWindow * RowBytes % 16 != 0) rowsPerWindow--;
        for (long first = 0; first < Rows; first += rowsPerWindow)
            yield return ((int)first, (int)Math.Min(rowsPerWindow, Rows - first), first * RowBytes);
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
    public long DeviceBytes => Buffer.AllocatedBytes;

    /// <inheritdoc/>
    public bool ReadsSourceInPlace => false;

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
