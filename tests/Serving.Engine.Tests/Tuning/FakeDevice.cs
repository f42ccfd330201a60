using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Engine.Tests.Tuning;

/// <summary>How a fake MatMul variant behaves: its device time per call (µs, by T) and whether its result is off.</summary>
/// <param name="Variant">The variant it declares.</param>
/// <param name="CostUs">Device time of a call with T rows.</param>
/// <param name="Wrong">Adds 1 to every output (a broken kernel).</param>
/// <param name="Perturb">Adds 1e-7 relative noise (correct within tolerance, not bit-identical to the default).</param>
public sealed record FakeKernel(KernelVariant Variant, Func<int, double> CostUs, bool Wrong = false, bool Perturb = false);

/// <summary>
/// A device whose MatMul variants have known costs and known correctness, for the tuner's selection logic: buffers
/// in managed memory, MatMul computed on the host in one fixed order (so correct variants agree bit for bit), and a
/// virtual device clock that each op advances by its variant's cost, so timings are exact and machine-independent.
/// Only MatMul and Copy run; other ops list no variants.
/// </summary>
public sealed class FakeDevice(IReadOnlyList<FakeKernel> kernels, bool reproducible = true) : IAccelerator
{
    public IReadOnlyList<FakeKernel> Kernels { get; } = kernels;
    public bool Reproducible { get; } = reproducible;
    public int MatMulCalls { get; internal set; }

    public DeviceDescriptor Descriptor { get; } = new("fake", 0, "Fake", "Test", "1.0", "fake-fingerprint", DeviceKind.Cpu, 1L << 32);
    public long FreeMemoryBytes => 1L << 32;
    public IEnergyMeter? EnergyMeter => null;

    public IDeviceBuffer Allocate(long bytes) => new FakeBuffer(this, bytes);

    public IDeviceWeight PrepareWeight(in WeightSource source)
    {
        source.Validate();
        var bytes = new byte[source.Bytes];
        Marshal.Copy(source.Pointer, bytes, 0, bytes.Length);
        return new FakeWeight(this, source.Type, source.Rows, source.Cols, bytes);
    }

    public IKvCache CreateKvCache(in KvCacheSpec spec) => throw new NotSupportedException("the fake device has no KV cache");

    public void Upload(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source) => source.CopyTo(((FakeBuffer)destination).Data.AsSpan((int)offset));

    public void Download(IDeviceBuffer source, long offset, Span<byte> destination) => ((FakeBuffer)source).Data.AsSpan((int)offset, destination.Length).CopyTo(destination);

    public IComputeStream CreateStream() => new FakeStream(this);

    public OpSupport Supports(in OpQuery query) => GetVariants(query.Op, query.Type).Count > 0 ? OpSupport.Yes : OpSupport.No("fake");

    public IReadOnlyList<KernelVariant> GetVariants(OpKind op, DataType type) => op switch
    {
        OpKind.MatMul when type == DataType.F32 => Kernels.Select(k => k.Variant).ToList(),
        OpKind.Copy => [new KernelVariant("copy_fake", OpKind.Copy, type, "copy")],
        _ => [],
    };

    public void Dispose() { }
}

internal sealed class FakeBuffer(IAccelerator device, long bytes) : IDeviceBuffer
{
    public byte[] Data { get; } = new byte[bytes];
    public IAccelerator Device { get; } = device;
    public long Length => Data.Length;
    public bool IsHostMemory => true;
    public bool IsDisposed { get; private set; }
    public void Dispose() => IsDisposed = true;
}

internal sealed class FakeWeight(IAccelerator device, DataType type, int rows, int cols, byte[] data) : IDeviceWeight
{
    public byte[] Data { get; } = data;
    public IAccelerator Device { get; } = device;
    public DataType Type { get; } = type;
    public int Rows { get; } = rows;
    public int Cols { get; } = cols;
    public long DeviceBytes => Data.Length;
    public bool ReadsSourceInPlace => false;
    public bool IsDisposed { get; private set; }
    public void Dispose() => IsDisposed = true;
}

/// <summary>Runs ops at once on the host; its clock advances by each op's declared cost.</summary>
internal sealed class FakeStream(FakeDevice device) : ComputeStream(device, device.Reproducible)
{
    private readonly List<double> _marks = [];
    private double _clockUs;

    protected override void MatMulCore(in TensorView x, IDeviceWeight weight, in TensorView y, KernelVariant variant)
    {
        var kernel = device.Kernels.Single(k => k.Variant.Name == variant.Name);
        device.MatMulCalls++;
        var w = MemoryMarshal.Cast<byte, float>(((FakeWeight)weight).Data);
        var xs = MemoryMarshal.Cast<byte, float>(((FakeBuffer)x.Buffer).Data.AsSpan((int)x.Offset, (int)x.ByteLength));
        var ys = MemoryMarshal.Cast<byte, float>(((FakeBuffer)y.Buffer).Data.AsSpan((int)y.Offset, (int)y.ByteLength));
        int k = x.Cols, n = weight.Rows;
        for (int t = 0; t < x.Rows; t++)
            for (int j = 0; j < n; j++)
            {
                float sum = 0;
                for (int i = 0; i < k; i++) sum += xs[t * k + i] * w[j * k + i];
                if (kernel.Wrong) sum += 1;
                if (kernel.Perturb) sum *= 1 + 1e-7f * ((t + j) % 2 == 0 ? 1 : -1);
                ys[t * n + j] = sum;
            }
        _clockUs += kernel.CostUs(x.Rows);
    }

    protected override void CopyCore(in TensorView source, in TensorView destination, KernelVariant variant)
    {
        ((FakeBuffer)source.Buffer).Data.AsSpan((int)source.Offset, (int)source.ByteLength)
            .CopyTo(((FakeBuffer)destination.Buffer).Data.AsSpan((int)destination.Offset));
        _clockUs += source.ByteLength / 10_000.0; // 10 GB/s
    }

    protected override void UploadCore(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source) => device.Upload(destination, offset, source);
    protected override void DownloadCore(IDeviceBuffer source, long offset, Span<byte> destination) => device.Download(source, offset, destination);

    protected override int RecordTimestampCore()
    {
        _marks.Add(_clockUs);
        return _marks.Count - 1;
    }

    protected override TimeSpan ElapsedCore(int start, int end) => TimeSpan.FromMicroseconds(_marks[end] - _marks[start]);
    protected override void FlushCore() { }
    protected override void SynchronizeCore() { }

    protected override void EmbedCore(IDeviceWeight table, in TensorView tokenIds, in TensorView output, KernelVariant variant) => throw new NotSupportedException();
    protected override void RmsNormCore(in TensorView x, in TensorView weight, in TensorView y, float eps, KernelVariant variant) => throw new NotSupportedException();
    protected override void RopeCore(in TensorView x, in TensorView positions, in RopeConfig config, KernelVariant variant) => throw new NotSupportedException();
    protected override void KvWriteCore(in TensorView k, in TensorView v, IKvCache cache, int layer, in TensorView slots, KernelVariant variant) => throw new NotSupportedException();
    protected override void AttentionCore(in TensorView q, IKvCache cache, int layer, in AttentionBatch batch, in TensorView output, KernelVariant variant) => throw new NotSupportedException();
    protected override void SwiGluCore(in TensorView gate, in TensorView up, in TensorView output, KernelVariant variant) => throw new NotSupportedException();
    protected override void AddCore(in TensorView a, in TensorView b, in TensorView output, KernelVariant variant) => throw new NotSupportedException();
    protected override void ArgmaxCore(in TensorView logits, in TensorView output, KernelVariant variant) => throw new NotSupportedException();
    protected override void GatherCore(in TensorView source, in TensorView rows, in TensorView output, KernelVariant variant) => throw new NotSupportedException();
}
