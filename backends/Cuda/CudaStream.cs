using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using Serving.Abstractions;
using Serving.Backends.Cuda.Kernels;
using Ops = Serving.Backends.Cuda.Kernels;

namespace Serving.Backends.Cuda;

/// <summary>
/// A stream of ops: one ILGPU stream (a CUDA stream on a GPU). Ops are kernel launches queued on it without waiting;
/// uploads copy the host bytes into pinned staging memory and queue an asynchronous copy, so a whole step runs with one
/// synchronisation, at the first <see cref="ComputeStream.Download"/> (or <see cref="ComputeStream.Synchronize"/>).
/// Staging and scratch replaced while work may still read them are freed at the next synchronisation.
/// </summary>
internal sealed class CudaStream : ComputeStream
{
    private const long StagingChunk = 4 << 20;

    private readonly List<PageLockedArray1D<byte>> _staging = [];
    private readonly List<IDisposable> _retired = [];
    private readonly List<long> _clockTimestamps = [];
    private readonly List<ProfilingMarker> _markers = [];
    private int _stagingChunk;
    private long _stagingUsed;
    private int _synchronizedTimestamps;
    private MemoryBuffer1D<byte, Stride1D.Dense>? _activations;
    private MemoryBuffer1D<float, Stride1D.Dense>? _splits;

    internal CudaStream(CudaAccelerator device, bool reproducible)
        : base(device, reproducible)
    {
        Owner = device;
        Handle = device.Accelerator.CreateStream();
    }

    /// <summary>The device.</summary>
    internal CudaAccelerator Owner { get; }

    /// <summary>The ILGPU stream.</summary>
    internal AcceleratorStream Handle { get; }

    /// <summary>True once disposed.</summary>
    internal bool IsDisposedStream => IsDisposed;

    /// <summary>The device's kernels.</summary>
    internal IKernelSet Kernels => Owner.Kernels;

    /// <summary>An f32 view's elements.</summary>
    internal ArrayView<float> F32(in TensorView v) => Words(v).Cast<float>();

    /// <summary>An i32 view's elements.</summary>
    internal ArrayView<int> I32(in TensorView v) => Words(v).Cast<int>();

    /// <summary>A view's bytes.</summary>
    internal ArrayView<byte> Bytes(in TensorView v) => ((CudaBuffer)v.Buffer).Bytes(v.Offset, v.ByteLength);

    private ArrayView<byte> Words(in TensorView v)
    {
        if (v.Offset % 4 != 0)
            throw new ArgumentException($"{Owner.Descriptor.Id}: a {v.Type.Name()} view must start at a multiple of 4 bytes (got offset {v.Offset})", nameof(v));
        return Bytes(v);
    }

    /// <summary>Scratch for x rounded to q8 blocks: <paramref name="elements"/> int8 quants, <paramref name="blocks"/> f32 scales.</summary>
    internal (ArrayView<byte> Quants, ArrayView<float> Scales) ActivationScratch(long elements, int blocks)
    {
        long quantBytes = (elements + 15) & ~15L;
        long need = quantBytes + 4L * blocks;
        if (_activations is null || _activations.Length < need)
        {
            if (_activations is not null) _retired.Add(_activations);
            _activations = Owner.AllocateScratch<byte>(Math.Max(need, 1 << 16), "activation scratch");
        }
        ArrayView<byte> raw = _activations.AsRawArrayView();
        return (raw.SubView(0, elements), raw.SubView(quantBytes, 4L * blocks).Cast<float>());
    }

    /// <summary>Scratch for split-K partial planes.</summary>
    internal ArrayView<float> SplitScratch(long count)
    {
        if (_splits is null || _splits.Length < count)
        {
            if (_splits is not null) _retired.Add(_splits);
            _splits = Owner.AllocateScratch<float>(Math.Max(count, 1 << 14), "split-K scratch");
        }
        return _splits.View.SubView(0, count).AsContiguous();
    }

    /// <inheritdoc/>
    protected override void ThrowIfUnusable()
    {
        base.ThrowIfUnusable();
        Owner.ThrowIfUnusable();
    }

    /// <inheritdoc/>
    protected override void EmbedCore(IDeviceWeight table, in TensorView tokenIds, in TensorView output, KernelVariant variant)
    {
        try { Ops.Embed.Record(this, (CudaWeight)table, tokenIds, output); }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("Embed", e); }
    }

    /// <inheritdoc/>
    protected override void RmsNormCore(in TensorView x, in TensorView weight, in TensorView y, float eps, KernelVariant variant)
    {
        try { Ops.RmsNorm.Record(this, x, weight, y, eps, Ops.Variants.WarpsPerGroup(variant)); }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("RmsNorm", e); }
    }

    /// <inheritdoc/>
    protected override void MatMulCore(in TensorView x, IDeviceWeight weight, in TensorView y, KernelVariant variant)
    {
        try { Ops.MatMul.Record(this, x, (CudaWeight)weight, y, Ops.Variants.MatMulShape(variant)); }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault($"MatMul {weight.Type.Name()}", e); }
    }

    /// <inheritdoc/>
    protected override void RopeCore(in TensorView x, in TensorView positions, in RopeConfig config, KernelVariant variant)
    {
        try { Ops.Rope.Record(this, x, positions, config); }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("Rope", e); }
    }

    /// <inheritdoc/>
    protected override void KvWriteCore(in TensorView k, in TensorView v, IKvCache cache, int layer, in TensorView slots, KernelVariant variant)
    {
        try { Ops.KvWrite.Record(this, k, v, (CudaKvCache)cache, layer, slots); }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("KvWrite", e); }
    }

    /// <inheritdoc/>
    protected override void AttentionCore(in TensorView q, IKvCache cache, int layer, in AttentionBatch batch, in TensorView output, KernelVariant variant)
    {
        try { Ops.Attention.Record(this, q, (CudaKvCache)cache, layer, batch, output, Ops.Variants.WarpsPerGroup(variant)); }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("Attention", e); }
    }

    /// <inheritdoc/>
    protected override void SwiGluCore(in TensorView gate, in TensorView up, in TensorView output, KernelVariant variant)
    {
        try { Ops.SwiGlu.Record(this, gate, up, output); }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("SwiGlu", e); }
    }

    /// <inheritdoc/>
    protected override void AddCore(in TensorView a, in TensorView b, in TensorView output, KernelVariant variant)
    {
        try { Ops.Add.Record(this, a, b, output); }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("Add", e); }
    }

    /// <inheritdoc/>
    protected override void CopyCore(in TensorView source, in TensorView destination, KernelVariant variant)
    {
        try { Ops.Copy.Record(this, source, destination); }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("Copy", e); }
    }

    /// <inheritdoc/>
    protected override void ArgmaxCore(in TensorView logits, in TensorView output, KernelVariant variant)
    {
        try { Ops.Argmax.Record(this, logits, output, Ops.Variants.WarpsPerGroup(variant)); }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("Argmax", e); }
    }

    /// <inheritdoc/>
    protected override void GatherCore(in TensorView source, in TensorView rows, in TensorView output, KernelVariant variant)
    {
        try { Ops.Gather.Record(this, source, rows, output); }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("Gather", e); }
    }

    /// <inheritdoc/>
    protected override void UploadCore(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
    {
        var buffer = (CudaBuffer)destination;
        try
        {
            if (Owner.IsCpu)
            {
                // The CPU accelerator copies at once (ordered after the work already queued on this stream), from the
                // caller's span pinned for the copy.
                buffer.CopyFromHost(Handle, offset, source);
                return;
            }
            // Pinned staging: copy the caller's bytes now, let the device fetch them when the stream gets there. The
            // staging chunk is page-locked native memory (it never moves) and is reused only after the next synchronisation.
            ArrayView<byte> target = buffer.Bytes(offset, source.Length);
            Span<byte> staged = Stage(source.Length, out PageLockedArray1D<byte> chunk, out long at);
            source.CopyTo(staged);
            target.CopyFromCPUUnsafeAsync(Handle, ref chunk.Span[(int)at], source.Length);
        }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("Upload", e); }
    }

    /// <inheritdoc/>
    protected override void DownloadCore(IDeviceBuffer source, long offset, Span<byte> destination)
    {
        try
        {
            if (destination.Length > 0)
                ((CudaBuffer)source).CopyToHost(Handle, offset, destination);
            else
                Handle.Synchronize();
            Synchronized();
        }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("Download", e); }
    }

    /// <inheritdoc/>
    protected override int RecordTimestampCore()
    {
        if (Owner.IsCpu)
        {
            Handle.Synchronize();
            _clockTimestamps.Add(Stopwatch.GetTimestamp());
            return _clockTimestamps.Count - 1;
        }
        try
        {
            _markers.Add(Handle.AddProfilingMarker());
            return _markers.Count - 1;
        }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("RecordTimestamp", e); }
    }

    /// <inheritdoc/>
    protected override TimeSpan ElapsedCore(int start, int end)
    {
        int count = Owner.IsCpu ? _clockTimestamps.Count : _markers.Count;
        if ((uint)start >= (uint)count || (uint)end >= (uint)count)
            throw new InvalidOperationException($"Elapsed: timestamp {Math.Max(start, end)} is not one of this stream's {count}");
        if (start >= _synchronizedTimestamps || end >= _synchronizedTimestamps)
            throw new InvalidOperationException("Elapsed: synchronize the stream after both timestamps first");
        if (Owner.IsCpu)
            return Stopwatch.GetElapsedTime(_clockTimestamps[start], _clockTimestamps[end]);
        if (start == end) return TimeSpan.Zero;
        TimeSpan elapsed = _markers[end].MeasureFrom(_markers[start]);
        return elapsed < TimeSpan.Zero ? -elapsed : elapsed;
    }

    /// <inheritdoc/>
    protected override void FlushCore()
    {
        // Kernel launches and copies are submitted to the driver as they are recorded: nothing waits here.
    }

    /// <inheritdoc/>
    protected override void SynchronizeCore()
    {
        try
        {
            Handle.Synchronize();
            Synchronized();
        }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { throw Owner.Fault("Synchronize", e); }
    }

    /// <summary>Waits for the stream's queued work (the device-level transfers call this before they touch memory). It
    /// may run on another thread than the stream's user, so it frees nothing: staging and timestamps stay the user's.</summary>
    internal void Drain() => Handle.Synchronize();

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        try { Handle.Synchronize(); }
        catch (Exception e) when (CudaAccelerator.IsFault(e)) { /* the device is gone; free what we hold anyway */ }
        Synchronized();
        foreach (var m in _markers) m.Dispose();
        foreach (var s in _staging) s.Dispose();
        _activations?.Dispose();
        _splits?.Dispose();
        Handle.Dispose();
        Owner.Forget(this);
    }

    /// <summary>Everything recorded so far has finished: timestamps become readable, staging and retired scratch free.</summary>
    private void Synchronized()
    {
        _synchronizedTimestamps = Owner.IsCpu ? _clockTimestamps.Count : _markers.Count;
        _stagingChunk = 0;
        _stagingUsed = 0;
        foreach (var r in _retired) r.Dispose();
        _retired.Clear();
    }

    private Span<byte> Stage(int length, out PageLockedArray1D<byte> chunk, out long at)
    {
        while (true)
        {
            if (_stagingChunk < _staging.Count)
            {
                chunk = _staging[_stagingChunk];
                if (chunk.Length - _stagingUsed >= length)
                {
                    at = _stagingUsed;
                    _stagingUsed += (length + 255) & ~255;
                    return chunk.Span.Slice((int)at, length);
                }
                _stagingChunk++;
                _stagingUsed = 0;
                continue;
            }
            _staging.Add(Owner.Accelerator.AllocatePageLocked1D<byte>(Math.Max(StagingChunk, length), uninitialized: true));
        }
    }
}
