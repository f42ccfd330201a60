using System.Diagnostics;
using Serving.Abstractions;
using Serving.Backends.Cpu.Kernels;
using Serving.Backends.Cpu.Kernels.Formats;
using Serving.Backends.Cpu.Kernels.MatMul;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu;

/// <summary>
/// A stream of ops on the CPU. The arguments are checked by <see cref="ComputeStream"/>, the front end every backend
/// shares; the core methods here check only the index values they read on the host (token ids, slots, positions,
/// sequences, block ids, gathered rows), throwing <see cref="ArgumentOutOfRangeException"/> rather than touching memory
/// outside the op's tensors, and then run the kernel at once on the device's worker pool: <see cref="ComputeStream.Flush"/>
/// and <see cref="ComputeStream.Synchronize"/> have nothing to wait for, an upload is a copy, and a timestamp is a clock
/// read. Scratch memory grows to the largest step seen and is then reused. Legend: T rows, K input dim, N output dim,
/// D model dim, H/Hkv heads, Dh head dim, F FFN dim, V vocab, S sequences, R gathered rows.
/// </summary>
internal sealed unsafe class CpuStream : ComputeStream
{
    private readonly CpuAccelerator _device;
    private readonly NativeScratch _scratch = new();
    private readonly List<long> _timestamps = [];

    /// <summary>Creates a stream on <paramref name="device"/>.</summary>
    internal CpuStream(CpuAccelerator device, bool reproducible)
        : base(device, reproducible)
        => _device = device;

    private WorkerPool Pool => _device.Pool;

    /// <inheritdoc/>
    protected override void EmbedCore(IDeviceWeight table, in TensorView tokenIds, in TensorView output, KernelVariant variant)
    {
        var w = (CpuWeight)table;
        int* ids = (int*)Ptr(tokenIds);
        int t = tokenIds.Cols;
        for (int i = 0; i < t; i++)
        {
            if ((uint)ids[i] >= (uint)w.Rows)
                throw new ArgumentOutOfRangeException(nameof(tokenIds), $"Embed: tokenIds[{i}] = {ids[i]} is outside the table's [0, {w.Rows}) rows");
        }
        Kernels.Embed.Run(Pool, w.Pointer, w.RowBytes, w.Format, ids, t, w.Cols, (float*)Ptr(output));
    }

    /// <inheritdoc/>
    protected override void RmsNormCore(in TensorView x, in TensorView weight, in TensorView y, float eps, KernelVariant variant)
        => Kernels.RmsNorm.Run(Pool, (float*)Ptr(x), (float*)Ptr(weight), (float*)Ptr(y), x.Rows, x.Cols, eps);

    /// <inheritdoc/>
    protected override void MatMulCore(in TensorView x, IDeviceWeight weight, in TensorView y, KernelVariant variant)
    {
        var w = (CpuWeight)weight;
        float* py = (float*)Ptr(y);
        if (x.Cols == 0)
        {
            // An empty sum: y = 0 without running a kernel over zero-length rows.
            new Span<float>(py, checked(x.Rows * w.Rows)).Clear();
            return;
        }
        MatMulEntry entry = w.Type == DataType.F16 && w.HalvesFinite ? WeightFormats.F16FiniteMatMul : w.Format.MatMul;
        byte* scratch = Scratch("MatMul", entry.ScratchBytes(x.Rows, x.Cols, Pool.Workers));
        var job = new MatMulJob
        {
            X = (float*)Ptr(x), W = w.Pointer, Y = py, RowBytes = w.RowBytes, T = x.Rows, K = x.Cols, N = w.Rows,
            Kernel = Variants.KernelOf(variant), Serial = Variants.IsSerial(variant),
        };
        MatMulDriver.Run(Pool, entry, &job, scratch);
    }

    /// <inheritdoc/>
    /// <remarks>Positions only scale angles, so any value is memory-safe and none is checked.</remarks>
    protected override void RopeCore(in TensorView x, in TensorView positions, in RopeConfig config, KernelVariant variant)
        => Kernels.Rope.Run(Pool, (float*)Ptr(x), (int*)Ptr(positions), (float*)Ptr(config.InverseFrequencies),
            x.Rows, config.Heads, config.HeadDim, config.RotaryDim, config.Style);

    /// <inheritdoc/>
    protected override void KvWriteCore(in TensorView k, in TensorView v, IKvCache cache, int layer, in TensorView slots, KernelVariant variant)
    {
        var c = (CpuKvCache)cache;
        KvCacheLayout layout = c.Layout;
        int* ps = (int*)Ptr(slots);
        for (int i = 0; i < k.Rows; i++)
        {
            if ((uint)ps[i] >= (ulong)layout.SlotsPerLayer)
                throw new ArgumentOutOfRangeException(nameof(slots), $"KvWrite: slots[{i}] = {ps[i]} is outside [0, {layout.SlotsPerLayer})");
        }
        long layerRow0 = layer * layout.SlotsPerLayer;
        if (layout.Type == DataType.F16)
            Kernels.KvWrite.RunF16((float*)Ptr(k), (float*)Ptr(v), (ushort*)c.K, (ushort*)c.V, layerRow0, ps, k.Rows, layout.RowElements);
        else
            Kernels.KvWrite.RunF32((float*)Ptr(k), (float*)Ptr(v), (float*)c.K, (float*)c.V, layerRow0, ps, k.Rows, layout.RowElements);
    }

    /// <inheritdoc/>
    protected override void AttentionCore(in TensorView q, IKvCache cache, int layer, in AttentionBatch batch, in TensorView output, KernelVariant variant)
    {
        const string op = nameof(Attention);
        var c = (CpuKvCache)cache;
        KvCacheLayout layout = c.Layout;
        int t = q.Rows, heads = batch.Heads, kvHeads = layout.KvHeads, dh = layout.HeadDim, bs = layout.BlockSize;
        int* positions = (int*)Ptr(batch.Positions);
        int* sequence = (int*)Ptr(batch.Sequence);
        int* tables = (int*)Ptr(batch.BlockTables);
        int sequences = batch.BlockTables.Rows, maxBlocks = batch.BlockTables.Cols;
        int maxPositions = 0;
        long work = 0;
        for (int r = 0; r < t; r++)
        {
            int seq = sequence[r], pos = positions[r];
            if ((uint)seq >= (uint)sequences)
                throw new ArgumentOutOfRangeException(nameof(batch), $"{op}: Sequence[{r}] = {seq} is outside BlockTables' [0, {sequences}) rows");
            if (pos < 0 || pos > batch.MaxPosition)
                throw new ArgumentOutOfRangeException(nameof(batch), $"{op}: Positions[{r}] = {pos} is outside [0, MaxPosition = {batch.MaxPosition}]");
            int* row = tables + (long)seq * maxBlocks;
            for (int b = 0; b <= pos / bs; b++)
            {
                if ((uint)row[b] >= (uint)layout.Blocks)
                    throw new ArgumentOutOfRangeException(nameof(batch), $"{op}: BlockTables[{seq}, {b}] = {row[b]} (used by row {r} at position {pos}) is outside [0, {layout.Blocks})");
            }
            maxPositions = Math.Max(maxPositions, pos + 1);
            work += (long)(pos + 1) * heads * dh * 2;
        }
        long perWorker = Kernels.Attention.ScratchFloats(maxPositions, dh, heads / kvHeads, bs, layout.Type == DataType.F16);
        float* scratch = (float*)Scratch(op, perWorker * Pool.Workers * sizeof(float));
        long layerRow0 = layer * layout.SlotsPerLayer;
        if (layout.Type == DataType.F16)
        {
            Kernels.Attention.Run<F16Row>(Pool, (float*)Ptr(q), (float*)Ptr(output), c.K, c.V, layerRow0, positions, sequence, tables,
                maxBlocks, bs, t, heads, kvHeads, dh, batch.Scale, scratch, perWorker, work);
        }
        else
        {
            Kernels.Attention.Run<F32Row>(Pool, (float*)Ptr(q), (float*)Ptr(output), c.K, c.V, layerRow0, positions, sequence, tables,
                maxBlocks, bs, t, heads, kvHeads, dh, batch.Scale, scratch, perWorker, work);
        }
    }

    /// <inheritdoc/>
    protected override void SwiGluCore(in TensorView gate, in TensorView up, in TensorView output, KernelVariant variant)
        => Kernels.SwiGlu.Run(Pool, (float*)Ptr(gate), (float*)Ptr(up), (float*)Ptr(output), (long)gate.Rows * gate.Cols);

    /// <inheritdoc/>
    protected override void AddCore(in TensorView a, in TensorView b, in TensorView output, KernelVariant variant)
    {
        if (b.Rows == a.Rows)
            Kernels.Add.Run(Pool, (float*)Ptr(a), (float*)Ptr(b), (float*)Ptr(output), (long)a.Rows * a.Cols);
        else
            Kernels.Add.RunBroadcast(Pool, (float*)Ptr(a), (float*)Ptr(b), (float*)Ptr(output), a.Rows, a.Cols);
    }

    /// <inheritdoc/>
    protected override void CopyCore(in TensorView source, in TensorView destination, KernelVariant variant)
        => Kernels.Copy.Run(Pool, Ptr(source), Ptr(destination), source.ByteLength);

    /// <inheritdoc/>
    protected override void ArgmaxCore(in TensorView logits, in TensorView output, KernelVariant variant)
        => Kernels.Argmax.Run(Pool, (float*)Ptr(logits), (int*)Ptr(output), logits.Rows, logits.Cols);

    /// <inheritdoc/>
    protected override void GatherCore(in TensorView source, in TensorView rows, in TensorView output, KernelVariant variant)
    {
        int* ids = (int*)Ptr(rows);
        int r = rows.Cols;
        for (int i = 0; i < r; i++)
        {
            if ((uint)ids[i] >= (uint)source.Rows)
                throw new ArgumentOutOfRangeException(nameof(rows), $"Gather: rows[{i}] = {ids[i]} is outside the source's [0, {source.Rows}) rows");
        }
        Kernels.Gather.Run(Pool, (float*)Ptr(source), ids, r, source.Cols, (float*)Ptr(output));
    }

    /// <inheritdoc/>
    /// <remarks>Ops already ran, so the copy happens now: ordered after every op recorded before it.</remarks>
    protected override void UploadCore(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
        => source.CopyTo(new Span<byte>(((CpuBuffer)destination).Pointer + offset, source.Length));

    /// <inheritdoc/>
    protected override void DownloadCore(IDeviceBuffer source, long offset, Span<byte> destination)
        => new ReadOnlySpan<byte>(((CpuBuffer)source).Pointer + offset, destination.Length).CopyTo(destination);

    /// <inheritdoc/>
    /// <remarks>Ops run when recorded, so the clock read now is the time after every op before it.</remarks>
    protected override int RecordTimestampCore()
    {
        _timestamps.Add(Stopwatch.GetTimestamp());
        return _timestamps.Count - 1;
    }

    /// <inheritdoc/>
    protected override TimeSpan ElapsedCore(int start, int end)
    {
        if ((uint)start >= (uint)_timestamps.Count || (uint)end >= (uint)_timestamps.Count)
            throw new InvalidOperationException($"Elapsed: timestamp {start} or {end} was not recorded by this stream ({_timestamps.Count} recorded)");
        return Stopwatch.GetElapsedTime(_timestamps[start], _timestamps[end]);
    }

    /// <inheritdoc/>
    /// <remarks>Ops already ran when recorded.</remarks>
    protected override void FlushCore()
    {
    }

    /// <inheritdoc/>
    /// <remarks>Ops already ran when recorded.</remarks>
    protected override void SynchronizeCore()
    {
    }

    /// <inheritdoc/>
    /// <remarks>Also refuses when the device was disposed.</remarks>
    protected override void ThrowIfUnusable()
    {
        base.ThrowIfUnusable();
        _device.ThrowIfDisposed();
    }

    /// <summary>Frees the stream's scratch memory.</summary>
    protected override void Dispose(bool disposing)
    {
        _scratch.Dispose();
        _device.OnStreamDisposed(this);
        base.Dispose(disposing);
    }

    private byte* Scratch(string op, long bytes)
    {
        try
        {
            return _scratch.Ensure(bytes);
        }
        catch (OutOfMemoryException e)
        {
            throw new CpuException(_device.Id, $"{op} scratch of {bytes} bytes", CpuException.OutOfMemory, "native allocation failed", e);
        }
    }

    /// <summary>The view's first byte (the front end checked device, disposal, type and bounds).</summary>
    private static byte* Ptr(in TensorView view) => ((CpuBuffer)view.Buffer).Pointer + view.Offset;
}
