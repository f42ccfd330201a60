using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

/// <summary>
/// The buffers of one case on one device; disposing frees them all. Inputs sit at a non-zero offset (so a backend
/// that ignores <see cref="TensorView.Offset"/> fails); outputs sit between two guard regions filled with a
/// pattern and are pre-filled with NaN, so writes outside the view and elements never written are both caught.
/// Weights are prepared from host memory with <see cref="IAccelerator.PrepareWeight"/> and KV caches created with
/// <see cref="IAccelerator.CreateKvCache"/>; both are disposed with the scratch.
/// </summary>
public sealed unsafe class DeviceScratch(IAccelerator device) : IDisposable
{
    /// <summary>Bytes of guard on each side of an output, and of padding before an input.</summary>
    public const int Guard = 64;

    private readonly List<IDeviceBuffer> _buffers = [];
    private readonly List<IDisposable> _owned = [];
    private readonly List<nint> _hostMemory = [];
    private readonly List<(TensorView View, byte[] Before, byte[] After)> _guarded = [];

    /// <summary>The device.</summary>
    public IAccelerator Device => device;

    /// <summary>An input view [rows, cols] of <paramref name="type"/> holding <paramref name="bytes"/>.</summary>
    public TensorView Input(DataType type, int rows, int cols, ReadOnlySpan<byte> bytes)
    {
        var view = new TensorView(Allocate(Guard + bytes.Length), Guard, type, rows, cols);
        if (view.ByteLength != bytes.Length) throw new ArgumentException($"{bytes.Length} bytes for {view}");
        device.Upload(view.Buffer, Guard, bytes);
        return view;
    }

    /// <summary>An f32 input [rows, cols].</summary>
    public TensorView Input(float[] values, int rows, int cols) => Input(DataType.F32, rows, cols, TestData.AsBytes(values));

    /// <summary>An i32 input [rows, cols].</summary>
    public TensorView Input(int[] values, int rows, int cols) => Input(DataType.I32, rows, cols, TestData.AsBytes(values));

    /// <summary>
    /// An output view [rows, cols] between guard regions; its bytes are <paramref name="initial"/> when given,
    /// otherwise all 0xFF (f32 NaN, i32 −1).
    /// </summary>
    public TensorView Output(DataType type, int rows, int cols, ReadOnlySpan<byte> initial = default)
    {
        long length = type.RowBytes(cols) * rows;
        var buffer = Allocate(Guard + length + Guard);
        var view = new TensorView(buffer, Guard, type, rows, cols);
        var before = GuardPattern(1);
        var after = GuardPattern(2);
        var body = new byte[length];
        if (initial.IsEmpty) body.AsSpan().Fill(0xFF);
        else initial.CopyTo(body);
        device.Upload(buffer, 0, before);
        device.Upload(buffer, Guard, body);
        device.Upload(buffer, Guard + length, after);
        _guarded.Add((view, before, after));
        return view;
    }

    /// <summary>An output that starts as a copy of <paramref name="values"/> (for in-place ops).</summary>
    public TensorView Output(float[] values, int rows, int cols) => Output(DataType.F32, rows, cols, TestData.AsBytes(values));

    /// <summary>
    /// A weight [rows, cols] of <paramref name="type"/> holding <paramref name="bytes"/> (GGUF layout), prepared by the
    /// device. <paramref name="persistent"/>: the host memory stays valid until the scratch is disposed (the device may
    /// read it in place); otherwise it is overwritten with garbage and freed as soon as PrepareWeight returns, so a
    /// device that kept a pointer to it instead of copying computes garbage.
    /// </summary>
    public IDeviceWeight Weight(DataType type, int rows, int cols, ReadOnlySpan<byte> bytes, bool persistent = false, string name = "weight")
    {
        nint memory = HostCopy(bytes);
        try
        {
            var weight = device.PrepareWeight(new WeightSource(name, memory, bytes.Length, type, rows, cols, persistent));
            _owned.Add(weight);
            return weight;
        }
        finally
        {
            if (persistent)
            {
                _hostMemory.Add(memory);
            }
            else
            {
                new Span<byte>((void*)memory, bytes.Length).Fill(0xA5);
                NativeMemory.AlignedFree((void*)memory);
            }
        }
    }

    /// <summary>64-byte aligned native memory holding <paramref name="bytes"/>; the caller frees it.</summary>
    public static nint HostCopy(ReadOnlySpan<byte> bytes)
    {
        void* memory = NativeMemory.AlignedAlloc((nuint)Math.Max(1, bytes.Length), 64);
        bytes.CopyTo(new Span<byte>(memory, bytes.Length));
        return (nint)memory;
    }

    /// <summary>A KV cache created by the device, disposed with the scratch.</summary>
    public IKvCache KvCache(KvCacheSpec spec)
    {
        var cache = device.CreateKvCache(spec);
        _owned.Add(cache);
        return cache;
    }

    /// <summary>A plain zero-filled buffer owned by this scratch.</summary>
    public IDeviceBuffer Allocate(long bytes)
    {
        var buffer = device.Allocate(bytes);
        _buffers.Add(buffer);
        return buffer;
    }

    /// <summary>Downloads a view's bytes.</summary>
    public byte[] Read(TensorView view)
    {
        var bytes = new byte[view.ByteLength];
        device.Download(view.Buffer, view.Offset, bytes);
        return bytes;
    }

    /// <summary>Downloads an f32 view.</summary>
    public float[] ReadF32(TensorView view)
    {
        var bytes = Read(view);
        var y = new float[bytes.Length / 4];
        for (int i = 0; i < y.Length; i++) y[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4 * i));
        return y;
    }

    /// <summary>Downloads an i32 view.</summary>
    public int[] ReadI32(TensorView view)
    {
        var bytes = Read(view);
        var y = new int[bytes.Length / 4];
        for (int i = 0; i < y.Length; i++) y[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(4 * i));
        return y;
    }

    /// <summary>Null when every guard region of every output is intact; else which one changed and where.</summary>
    public string? CheckGuards()
    {
        foreach (var (view, before, after) in _guarded)
        {
            var head = new byte[Guard];
            var tail = new byte[Guard];
            device.Download(view.Buffer, view.Offset - Guard, head);
            device.Download(view.Buffer, view.Offset + view.ByteLength, tail);
            int i = FirstDifference(head, before);
            if (i >= 0) return $"write before output {view}: guard byte {i - Guard} (relative to the view) changed";
            i = FirstDifference(tail, after);
            if (i >= 0) return $"write after output {view}: byte {view.ByteLength + i} (relative to the view) changed";
        }
        return null;
    }

    private static int FirstDifference(byte[] a, byte[] b)
    {
        for (int i = 0; i < a.Length; i++)
            if (a[i] != b[i]) return i;
        return -1;
    }

    private static byte[] GuardPattern(int salt)
    {
        var bytes = new byte[Guard];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(0x5A ^ (i * 29 + salt));
        return bytes;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var owned in _owned) owned.Dispose();
        _owned.Clear();
        foreach (var buffer in _buffers) buffer.Dispose();
        _buffers.Clear();
        foreach (nint memory in _hostMemory) NativeMemory.AlignedFree((void*)memory);
        _hostMemory.Clear();
    }
}
