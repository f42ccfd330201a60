using System.Diagnostics;
using Serving.Abstractions;

namespace Serving.Backends.Scalar;

/// <summary>
/// A stream of the scalar device. The front end (<see cref="ComputeStream"/>) has checked every argument; each core
/// method runs its op at once, so uploads are ordered with the ops trivially and Flush has nothing to submit.
/// </summary>
public sealed class ScalarStream : ComputeStream
{
    private readonly ScalarAccelerator _device;
    private readonly List<long> _timestamps = [];
    private int _synchronized;

    internal ScalarStream(ScalarAccelerator device, bool reproducible) : base(device, reproducible) => _device = device;

    /// <inheritdoc/>
    protected override void ThrowIfUnusable()
    {
        _device.ThrowIfDisposed();
        base.ThrowIfUnusable();
    }

    /// <inheritdoc/>
    protected override void EmbedCore(IDeviceWeight table, in TensorView tokenIds, in TensorView output, KernelVariant variant)
        => Kernels.Embed.Run((ScalarWeight)table, tokenIds, output);

    /// <inheritdoc/>
    protected override void RmsNormCore(in TensorView x, in TensorView weight, in TensorView y, float eps, KernelVariant variant)
        => Kernels.RmsNorm.Run(x, weight, y, eps);

    /// <inheritdoc/>
    protected override void MatMulCore(in TensorView x, IDeviceWeight weight, in TensorView y, KernelVariant variant)
        => Kernels.MatMul.Run(x, (ScalarWeight)weight, y);

    /// <inheritdoc/>
    protected override void RopeCore(in TensorView x, in TensorView positions, in RopeConfig config, KernelVariant variant)
        => Kernels.Rope.Run(x, positions, config);

    /// <inheritdoc/>
    protected override void KvWriteCore(in TensorView k, in TensorView v, IKvCache cache, int layer, in TensorView slots, KernelVariant variant)
        => Kernels.KvWrite.Run(k, v, (ScalarKvCache)cache, layer, slots);

    /// <inheritdoc/>
    protected override void AttentionCore(in TensorView q, IKvCache cache, int layer, in AttentionBatch batch, in TensorView output, KernelVariant variant)
        => Kernels.Attention.Run(q, (ScalarKvCache)cache, layer, batch, output);

    /// <inheritdoc/>
    protected override void SwiGluCore(in TensorView gate, in TensorView up, in TensorView output, KernelVariant variant)
        => Kernels.SwiGlu.Run(gate, up, output);

    /// <inheritdoc/>
    protected override void AddCore(in TensorView a, in TensorView b, in TensorView output, KernelVariant variant)
        => Kernels.Add.Run(a, b, output);

    /// <inheritdoc/>
    protected override void CopyCore(in TensorView source, in TensorView destination, KernelVariant variant)
        => Kernels.Copy.Run(source, destination);

    /// <inheritdoc/>
    protected override void ArgmaxCore(in TensorView logits, in TensorView output, KernelVariant variant)
        => Kernels.Argmax.Run(logits, output);

    /// <inheritdoc/>
    protected override void GatherCore(in TensorView source, in TensorView rows, in TensorView output, KernelVariant variant)
        => Kernels.Gather.Run(source, rows, output);

    /// <inheritdoc/>
    protected override void UploadCore(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
        => source.CopyTo(((ScalarBuffer)destination).Data.AsSpan(checked((int)offset), source.Length));

    /// <inheritdoc/>
    protected override void DownloadCore(IDeviceBuffer source, long offset, Span<byte> destination)
    {
        SynchronizeCore();
        ((ScalarBuffer)source).Data.AsSpan(checked((int)offset), destination.Length).CopyTo(destination);
    }

    /// <inheritdoc/>
    protected override int RecordTimestampCore()
    {
        _timestamps.Add(Stopwatch.GetTimestamp());
        return _timestamps.Count - 1;
    }

    /// <inheritdoc/>
    protected override TimeSpan ElapsedCore(int start, int end)
    {
        if ((uint)start >= (uint)_synchronized || (uint)end >= (uint)_synchronized)
            throw new InvalidOperationException($"Elapsed: timestamps {start} and {end} are not both covered by a Synchronize yet");
        return Stopwatch.GetElapsedTime(_timestamps[start], _timestamps[end]);
    }

    /// <inheritdoc/>
    protected override void FlushCore()
    {
    }

    /// <inheritdoc/>
    protected override void SynchronizeCore() => _synchronized = _timestamps.Count;

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        _device.Release(this, 0);
        base.Dispose(disposing);
    }
}
