namespace Serving.Abstractions;

/// <summary>The argument checks of <see cref="ComputeStream"/>, shared by every op.</summary>
public abstract partial class ComputeStream
{
    /// <summary>Throws unless <paramref name="buffer"/> is a live buffer of this stream's device.</summary>
    private void CheckBuffer(string op, string name, IDeviceBuffer? buffer)
    {
        if (buffer is null)
            throw new ArgumentNullException(name, $"{op}: {name} has no buffer");
        if (!ReferenceEquals(buffer.Device, Device))
            throw new ArgumentException($"{op}: {name} belongs to another device instance ({buffer.Device?.Descriptor.Id}), not to this {Device.Descriptor.Id}", name);
        ObjectDisposedException.ThrowIf(buffer.IsDisposed, buffer);
    }

    /// <summary>Checks device, disposal, type (when given), dimensions, block alignment and that the view lies in its buffer.</summary>
    private void CheckView(string op, string name, in TensorView view, DataType? type = null)
    {
        CheckBuffer(op, name, view.Buffer);
        if (!Enum.IsDefined(view.Type))
            throw new ArgumentException($"{op}: {name} has unknown type {(int)view.Type}", name);
        if (type is { } expected && view.Type != expected)
            throw new ArgumentException($"{op}: {name} must be {expected.Name()}, got {view}", name);
        if (view.Rows < 0 || view.Cols < 0)
            throw new ArgumentOutOfRangeException(name, $"{op}: {name} has a negative dimension: [{view.Rows}, {view.Cols}]");
        if (view.Type.IsQuantized() && view.Cols % view.Type.BlockSize() != 0)
            throw new ArgumentException($"{op}: {name} {view.Type.Name()} rows must be a multiple of {view.Type.BlockSize()} elements, got [{view.Rows}, {view.Cols}]", name);
        long length = view.Buffer.Length;
        long rowBytes = view.RowBytes;
        // Divide rather than multiply: Rows · RowBytes can overflow a long for absurd shapes.
        if (view.Offset < 0 || view.Offset > length || (rowBytes > 0 && view.Rows > (length - view.Offset) / rowBytes))
            throw new ArgumentOutOfRangeException(name, $"{op}: {name} {view} does not fit in its buffer of {length} bytes");
    }

    private void CheckWeight(string op, string name, IDeviceWeight? weight)
    {
        if (weight is null)
            throw new ArgumentNullException(name, $"{op}: {name} is null");
        if (!ReferenceEquals(weight.Device, Device))
            throw new ArgumentException($"{op}: {name} was prepared by another device instance ({weight.Device?.Descriptor.Id}), not by this {Device.Descriptor.Id}", name);
        ObjectDisposedException.ThrowIf(weight.IsDisposed, weight);
    }

    private KvCacheLayout CheckCache(string op, IKvCache? cache, int layer)
    {
        if (cache is null)
            throw new ArgumentNullException(nameof(cache), $"{op}: cache is null");
        if (!ReferenceEquals(cache.Device, Device))
            throw new ArgumentException($"{op}: cache belongs to another device instance ({cache.Device?.Descriptor.Id}), not to this {Device.Descriptor.Id}", nameof(cache));
        ObjectDisposedException.ThrowIf(cache.IsDisposed, cache);
        KvCacheLayout layout = cache.Layout;
        if ((uint)layer >= (uint)layout.Layers)
            throw new ArgumentOutOfRangeException(nameof(layer), $"{op}: layer {layer} outside [0, {layout.Layers})");
        return layout;
    }

    private void CheckRange(string op, string name, IDeviceBuffer buffer, long offset, long length)
    {
        CheckBuffer(op, name, buffer);
        if (offset < 0 || offset > buffer.Length || length > buffer.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"{op}: {length} bytes at offset {offset} do not fit in a buffer of {buffer.Length} bytes");
    }

    private static void RequireShape(string op, string name, in TensorView view, int rows, int cols, string expected)
    {
        if (view.Rows != rows || view.Cols != cols)
            throw new ArgumentException($"{op}: {name} must be {expected} = [{rows}, {cols}], got {view}", name);
    }

    private static bool Overlap(in TensorView a, in TensorView b)
        => ReferenceEquals(a.Buffer, b.Buffer) && a.ByteLength > 0 && b.ByteLength > 0
           && a.Offset < b.Offset + b.ByteLength && b.Offset < a.Offset + a.ByteLength;

    private static void NoOverlap(string op, string aName, in TensorView a, string bName, in TensorView b)
    {
        if (Overlap(a, b))
            throw new ArgumentException($"{op}: {aName} {a} must not overlap {bName} {b}", aName);
    }

    /// <summary>Element-wise ops may write in place (the very same view) but not into a shifted overlap.</summary>
    private static void SameOrDisjoint(string op, string aName, in TensorView a, string bName, in TensorView b)
    {
        if (Overlap(a, b) && (a.Offset != b.Offset || a.ByteLength != b.ByteLength))
            throw new ArgumentException($"{op}: {aName} {a} partly overlaps {bName} {b}; it may only be the same view or disjoint", aName);
    }
}
