using Serving.Abstractions;
using Serving.Backends.Cpu.Kernels;
using Serving.Backends.Cpu.Kernels.MatMul;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu;

/// <summary>
/// A stream of ops on the CPU. Each public op validates everything at the door (device, disposal, types, shapes,
/// bounds, aliasing, index values read from I32 views) and then runs its kernel at once on the device's worker
/// pool, so <see cref="Flush"/> and <see cref="Synchronize"/> have nothing to wait for. Scratch memory grows to the
/// largest step seen and is then reused. Legend: T rows, K input dim, N output dim, D model dim, H/Hkv heads,
/// Dh head dim, F FFN dim, V vocab, S sequences.
/// </summary>
internal sealed unsafe class CpuStream : IComputeStream
{
    private readonly CpuAccelerator _device;
    private readonly NativeScratch _scratch = new();
    private bool _disposed;

    /// <summary>Creates a stream on <paramref name="device"/>.</summary>
    internal CpuStream(CpuAccelerator device) => _device = device;

    /// <inheritdoc/>
    public IAccelerator Device => _device;

    private WorkerPool Pool => _device.Pool;

    /// <inheritdoc/>
    public void Embed(TensorView table, TensorView tokenIds, TensorView output)
    {
        const string op = nameof(Embed);
        Enter();
        byte* tab = Ptr(op, nameof(table), table);
        WeightFormat format = RequireWeightFormat(op, nameof(table), table);
        int* ids = (int*)Ptr(op, nameof(tokenIds), tokenIds, DataType.I32);
        RequireRows(op, nameof(tokenIds), tokenIds, 1, "[1, T]");
        int t = tokenIds.Cols, d = table.Cols;
        float* y = (float*)Ptr(op, nameof(output), output, DataType.F32);
        RequireShape(op, nameof(output), output, t, d, "[T, D]");
        NoOverlap(op, nameof(output), output, nameof(table), table);
        NoOverlap(op, nameof(output), output, nameof(tokenIds), tokenIds);
        for (int i = 0; i < t; i++)
        {
            if ((uint)ids[i] >= (uint)table.Rows)
                throw new ArgumentOutOfRangeException(nameof(tokenIds), $"{op}: tokenIds[{i}] = {ids[i]} is outside the table's [0, {table.Rows}) rows");
        }
        Kernels.Embed.Run(Pool, tab, table.RowBytes, format, ids, t, d, y);
    }

    /// <inheritdoc/>
    public void RmsNorm(TensorView x, TensorView weight, TensorView y, float eps)
    {
        const string op = nameof(RmsNorm);
        Enter();
        float* px = (float*)Ptr(op, nameof(x), x, DataType.F32);
        float* pw = (float*)Ptr(op, nameof(weight), weight, DataType.F32);
        float* py = (float*)Ptr(op, nameof(y), y, DataType.F32);
        RequireShape(op, nameof(weight), weight, 1, x.Cols, "[1, D]");
        RequireShape(op, nameof(y), y, x.Rows, x.Cols, "[T, D] like x");
        if (!(eps >= 0) || float.IsInfinity(eps))
            throw new ArgumentOutOfRangeException(nameof(eps), $"{op}: eps must be finite and ≥ 0, got {eps}");
        SameOrDisjoint(op, nameof(y), y, nameof(x), x);
        NoOverlap(op, nameof(y), y, nameof(weight), weight);
        Kernels.RmsNorm.Run(Pool, px, pw, py, x.Rows, x.Cols, eps);
    }

    /// <inheritdoc/>
    public void MatMul(TensorView x, TensorView weight, TensorView y, KernelVariant? variant = null)
    {
        const string op = nameof(MatMul);
        Enter();
        float* px = (float*)Ptr(op, nameof(x), x, DataType.F32);
        byte* pw = Ptr(op, nameof(weight), weight);
        WeightFormat format = RequireWeightFormat(op, nameof(weight), weight);
        float* py = (float*)Ptr(op, nameof(y), y, DataType.F32);
        if (weight.Cols != x.Cols)
            throw new ArgumentException($"{op}: x {x} and weight {weight} disagree on K ({x.Cols} vs {weight.Cols})", nameof(weight));
        RequireShape(op, nameof(y), y, x.Rows, weight.Rows, "[T, N]");
        NoOverlap(op, nameof(y), y, nameof(x), x);
        NoOverlap(op, nameof(y), y, nameof(weight), weight);
        MatMulKernel kernel = Variants.KernelOf(ResolveVariant(op, weight.Type, variant));

        int workers = Pool.Workers;
        byte* scratch = Scratch(op, format.MatMul.ScratchBytes(x.Rows, x.Cols, workers));
        var job = new MatMulJob
        {
            X = px, W = pw, Y = py, RowBytes = weight.RowBytes, T = x.Rows, K = x.Cols, N = weight.Rows, Kernel = kernel,
        };
        if (x.Cols == 0)
        {
            // An empty sum: y = 0 without running a kernel over zero-length rows.
            new Span<float>(py, checked(x.Rows * weight.Rows)).Clear();
            return;
        }
        MatMulDriver.Run(Pool, format.MatMul, &job, scratch);
    }

    /// <inheritdoc/>
    public void Rope(TensorView x, TensorView positions, in RopeConfig config)
    {
        const string op = nameof(Rope);
        Enter();
        float* px = (float*)Ptr(op, nameof(x), x, DataType.F32);
        int* pos = (int*)Ptr(op, nameof(positions), positions, DataType.I32);
        RequireShape(op, nameof(positions), positions, 1, x.Rows, "[1, T]");
        if (config.Heads <= 0 || config.HeadDim <= 0)
            throw new ArgumentOutOfRangeException(nameof(config), $"{op}: Heads ({config.Heads}) and HeadDim ({config.HeadDim}) must be > 0");
        if (config.RotaryDim < 0 || config.RotaryDim > config.HeadDim || config.RotaryDim % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(config), $"{op}: RotaryDim must be even and in [0, HeadDim = {config.HeadDim}], got {config.RotaryDim}");
        if (!Enum.IsDefined(config.Style))
            throw new ArgumentOutOfRangeException(nameof(config), $"{op}: unknown style {config.Style}");
        if ((long)config.Heads * config.HeadDim != x.Cols)
            throw new ArgumentException($"{op}: x {x} must have Heads·HeadDim = {config.Heads}·{config.HeadDim} columns", nameof(x));
        TensorView inv = config.InverseFrequencies;
        float* pf = (float*)Ptr(op, "InverseFrequencies", inv, DataType.F32);
        RequireShape(op, "InverseFrequencies", inv, 1, config.RotaryDim / 2, "[1, RotaryDim/2]");
        NoOverlap(op, nameof(x), x, nameof(positions), positions);
        NoOverlap(op, nameof(x), x, "InverseFrequencies", inv);
        if (config.RotaryDim == 0)
            return;
        Kernels.Rope.Run(Pool, px, pos, pf, x.Rows, config.Heads, config.HeadDim, config.RotaryDim, config.Style);
    }

    /// <inheritdoc/>
    public void KvWrite(TensorView k, TensorView v, in KvCacheView cache, int layer, TensorView slots)
    {
        const string op = nameof(KvWrite);
        Enter();
        KvCacheLayout layout = cache.Layout;
        CheckCache(op, cache, out float* cacheK, out float* cacheV);
        if ((uint)layer >= (uint)layout.Layers)
            throw new ArgumentOutOfRangeException(nameof(layer), $"{op}: layer {layer} outside [0, {layout.Layers})");
        float* pk = (float*)Ptr(op, nameof(k), k, DataType.F32);
        float* pv = (float*)Ptr(op, nameof(v), v, DataType.F32);
        RequireShape(op, nameof(k), k, k.Rows, layout.RowElements, "[T, Hkv·Dh]");
        RequireShape(op, nameof(v), v, k.Rows, layout.RowElements, "[T, Hkv·Dh] like k");
        int* ps = (int*)Ptr(op, nameof(slots), slots, DataType.I32);
        RequireShape(op, nameof(slots), slots, 1, k.Rows, "[1, T]");
        foreach ((string name, TensorView view) in new[] { (nameof(k), k), (nameof(v), v), (nameof(slots), slots) })
        {
            if (ReferenceEquals(view.Buffer, cache.K) || ReferenceEquals(view.Buffer, cache.V))
                throw new ArgumentException($"{op}: {name} {view} must not live in the cache's own buffers", name);
        }
        for (int i = 0; i < k.Rows; i++)
        {
            if ((uint)ps[i] >= (ulong)layout.SlotsPerLayer)
                throw new ArgumentOutOfRangeException(nameof(slots), $"{op}: slots[{i}] = {ps[i]} is outside [0, {layout.SlotsPerLayer})");
        }
        Kernels.KvWrite.Run(pk, pv, cacheK, cacheV, layer * layout.SlotsPerLayer, ps, k.Rows, layout.RowElements);
    }

    /// <inheritdoc/>
    public void Attention(TensorView q, in KvCacheView cache, int layer, in AttentionBatch batch, TensorView output)
    {
        const string op = nameof(Attention);
        Enter();
        KvCacheLayout layout = cache.Layout;
        CheckCache(op, cache, out float* cacheK, out float* cacheV);
        if ((uint)layer >= (uint)layout.Layers)
            throw new ArgumentOutOfRangeException(nameof(layer), $"{op}: layer {layer} outside [0, {layout.Layers})");
        int heads = batch.Heads, kvHeads = layout.KvHeads, dh = layout.HeadDim;
        if (heads <= 0 || heads % kvHeads != 0)
            throw new ArgumentOutOfRangeException(nameof(batch), $"{op}: Heads ({heads}) must be a positive multiple of the cache's KvHeads ({kvHeads})");
        if (!float.IsFinite(batch.Scale))
            throw new ArgumentOutOfRangeException(nameof(batch), $"{op}: Scale must be finite, got {batch.Scale}");
        float* pq = (float*)Ptr(op, nameof(q), q, DataType.F32);
        if ((long)heads * dh != q.Cols)
            throw new ArgumentException($"{op}: q {q} must have H·Dh = {heads}·{dh} columns", nameof(q));
        int t = q.Rows;
        float* po = (float*)Ptr(op, nameof(output), output, DataType.F32);
        RequireShape(op, nameof(output), output, t, q.Cols, "[T, H·Dh] like q");
        int* positions = (int*)Ptr(op, "Positions", batch.Positions, DataType.I32);
        RequireShape(op, "Positions", batch.Positions, 1, t, "[1, T]");
        int* sequence = (int*)Ptr(op, "Sequence", batch.Sequence, DataType.I32);
        RequireShape(op, "Sequence", batch.Sequence, 1, t, "[1, T]");
        int* tables = (int*)Ptr(op, "BlockTables", batch.BlockTables, DataType.I32);
        int sequences = batch.BlockTables.Rows, maxBlocks = batch.BlockTables.Cols;
        NoOverlap(op, nameof(output), output, nameof(q), q);
        foreach ((string name, TensorView view) in new[] { ("Positions", batch.Positions), ("Sequence", batch.Sequence), ("BlockTables", batch.BlockTables) })
            NoOverlap(op, nameof(output), output, name, view);
        if (ReferenceEquals(output.Buffer, cache.K) || ReferenceEquals(output.Buffer, cache.V))
            throw new ArgumentException($"{op}: output {output} must not live in the cache's own buffers", nameof(output));

        int bs = layout.BlockSize;
        int maxPositions = 0;
        long work = 0;
        for (int r = 0; r < t; r++)
        {
            int seq = sequence[r], pos = positions[r];
            if ((uint)seq >= (uint)sequences)
                throw new ArgumentOutOfRangeException(nameof(batch), $"{op}: Sequence[{r}] = {seq} is outside BlockTables' [0, {sequences}) rows");
            if (pos < 0 || pos / bs >= maxBlocks)
                throw new ArgumentOutOfRangeException(nameof(batch), $"{op}: Positions[{r}] = {pos} is outside [0, {(long)maxBlocks * bs}) (BlockTables has {maxBlocks} blocks of {bs})");
            int* row = tables + (long)seq * maxBlocks;
            for (int b = 0; b <= pos / bs; b++)
            {
                if ((uint)row[b] >= (uint)layout.Blocks)
                    throw new ArgumentOutOfRangeException(nameof(batch), $"{op}: BlockTables[{seq}, {b}] = {row[b]} (used by row {r} at position {pos}) is outside [0, {layout.Blocks})");
            }
            maxPositions = Math.Max(maxPositions, pos + 1);
            work += (long)(pos + 1) * heads * dh * 2;
        }
        if (t == 0)
            return;
        long perWorker = Kernels.Attention.ScratchFloats(maxPositions, dh, heads / kvHeads);
        float* scratch = (float*)Scratch(op, perWorker * Pool.Workers * sizeof(float));
        Kernels.Attention.Run(Pool, pq, po, cacheK, cacheV, layer * layout.SlotsPerLayer, positions, sequence, tables,
            maxBlocks, bs, t, heads, kvHeads, dh, batch.Scale, scratch, perWorker, work);
    }

    /// <inheritdoc/>
    public void SwiGlu(TensorView gate, TensorView up, TensorView output)
    {
        const string op = nameof(SwiGlu);
        Enter();
        float* pg = (float*)Ptr(op, nameof(gate), gate, DataType.F32);
        float* pu = (float*)Ptr(op, nameof(up), up, DataType.F32);
        float* po = (float*)Ptr(op, nameof(output), output, DataType.F32);
        RequireShape(op, nameof(up), up, gate.Rows, gate.Cols, "[T, F] like gate");
        RequireShape(op, nameof(output), output, gate.Rows, gate.Cols, "[T, F] like gate");
        SameOrDisjoint(op, nameof(output), output, nameof(gate), gate);
        SameOrDisjoint(op, nameof(output), output, nameof(up), up);
        Kernels.SwiGlu.Run(Pool, pg, pu, po, (long)gate.Rows * gate.Cols);
    }

    /// <inheritdoc/>
    public void Add(TensorView a, TensorView b, TensorView output)
    {
        const string op = nameof(Add);
        Enter();
        float* pa = (float*)Ptr(op, nameof(a), a, DataType.F32);
        float* pb = (float*)Ptr(op, nameof(b), b, DataType.F32);
        float* po = (float*)Ptr(op, nameof(output), output, DataType.F32);
        RequireShape(op, nameof(b), b, a.Rows, a.Cols, "the shape of a");
        RequireShape(op, nameof(output), output, a.Rows, a.Cols, "the shape of a");
        SameOrDisjoint(op, nameof(output), output, nameof(a), a);
        SameOrDisjoint(op, nameof(output), output, nameof(b), b);
        Kernels.Add.Run(Pool, pa, pb, po, (long)a.Rows * a.Cols);
    }

    /// <inheritdoc/>
    public void Copy(TensorView source, TensorView destination)
    {
        const string op = nameof(Copy);
        Enter();
        byte* src = Ptr(op, nameof(source), source);
        byte* dst = Ptr(op, nameof(destination), destination);
        if (source.ByteLength != destination.ByteLength)
            throw new ArgumentException($"{op}: source {source} is {source.ByteLength} bytes, destination {destination} is {destination.ByteLength}", nameof(destination));
        NoOverlap(op, nameof(destination), destination, nameof(source), source);
        Kernels.Copy.Run(Pool, src, dst, source.ByteLength);
    }

    /// <inheritdoc/>
    public void Argmax(TensorView logits, TensorView output)
    {
        const string op = nameof(Argmax);
        Enter();
        float* pl = (float*)Ptr(op, nameof(logits), logits, DataType.F32);
        int* po = (int*)Ptr(op, nameof(output), output, DataType.I32);
        RequireShape(op, nameof(output), output, 1, logits.Rows, "[1, T]");
        if (logits.Cols == 0 && logits.Rows > 0)
            throw new ArgumentException($"{op}: logits {logits} has empty rows", nameof(logits));
        NoOverlap(op, nameof(output), output, nameof(logits), logits);
        Kernels.Argmax.Run(Pool, pl, po, logits.Rows, logits.Cols);
    }

    /// <inheritdoc/>
    /// <remarks>Ops already ran when recorded; only checks that the stream is usable.</remarks>
    public void Flush() => Enter();

    /// <inheritdoc/>
    /// <remarks>Ops already ran when recorded; only checks that the stream is usable.</remarks>
    public void Synchronize() => Enter();

    /// <summary>Frees the stream's scratch memory.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _scratch.Dispose();
        _device.OnStreamDisposed(this);
    }

    private void Enter()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _device.ThrowIfDisposed();
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

    /// <summary>The view's first byte, after checking device, disposal, type, and that it lies inside its buffer.</summary>
    private byte* Ptr(string op, string name, in TensorView view, DataType? type = null)
    {
        CpuBuffer buffer = _device.Resolve(view.Buffer, op, name);
        if (!Enum.IsDefined(view.Type))
            throw new ArgumentException($"{op}: {name} has unknown type {(int)view.Type}", name);
        if (type is { } expected && view.Type != expected)
            throw new ArgumentException($"{op}: {name} must be {expected.Name()}, got {view}", name);
        if (view.Rows < 0 || view.Cols < 0)
            throw new ArgumentOutOfRangeException(name, $"{op}: {name} has a negative dimension: [{view.Rows}, {view.Cols}]");
        if (view.Type.IsQuantized() && view.Cols % view.Type.BlockSize() != 0)
            throw new ArgumentException($"{op}: {name} {view.Type.Name()} rows must be a multiple of {view.Type.BlockSize()} elements, got [{view.Rows}, {view.Cols}]", name);
        long rowBytes = view.RowBytes;
        // Divide rather than multiply: Rows · RowBytes can overflow a long for absurd shapes.
        if (view.Offset < 0 || view.Offset > buffer.Length || (rowBytes > 0 && view.Rows > (buffer.Length - view.Offset) / rowBytes))
            throw new ArgumentOutOfRangeException(name, $"{op}: {name} {view} does not fit in its buffer of {buffer.Length} bytes");
        view.CheckBounds(name);
        return buffer.Pointer + view.Offset;
    }

    private void CheckCache(string op, in KvCacheView cache, out float* cacheK, out float* cacheV)
    {
        KvCacheLayout layout = cache.Layout;
        if (layout.Type != DataType.F32)
            throw new ArgumentException($"{op}: the CPU KV cache must be f32 (v1), got {layout.Type.Name()}", nameof(cache));
        if (layout.Layers <= 0 || layout.Blocks <= 0 || layout.BlockSize <= 0 || layout.KvHeads <= 0 || layout.HeadDim <= 0)
            throw new ArgumentOutOfRangeException(nameof(cache), $"{op}: every cache dimension must be > 0, got {layout}");
        CpuBuffer k = _device.Resolve(cache.K, op, "cache.K");
        CpuBuffer v = _device.Resolve(cache.V, op, "cache.V");
        if (ReferenceEquals(k, v))
            throw new ArgumentException($"{op}: cache.K and cache.V must be different buffers", nameof(cache));
        long bytes;
        try
        {
            bytes = checked((long)layout.RowElements * sizeof(float) * layout.SlotsPerLayer * layout.Layers);
        }
        catch (OverflowException)
        {
            throw new ArgumentOutOfRangeException(nameof(cache), $"{op}: cache layout {layout} is too large");
        }
        if (k.Length < bytes || v.Length < bytes)
            throw new ArgumentOutOfRangeException(nameof(cache), $"{op}: cache layout {layout} needs {bytes} bytes per tensor; K has {k.Length}, V has {v.Length}");
        cacheK = (float*)k.Pointer;
        cacheV = (float*)v.Pointer;
    }

    private KernelVariant ResolveVariant(string op, DataType type, KernelVariant? variant)
    {
        IReadOnlyList<KernelVariant> variants = Variants.For(OpKind.MatMul, type);
        if (variant is null)
            return variants[0];
        foreach (KernelVariant v in variants)
        {
            if (v.Name == variant.Name && v.Op == variant.Op && v.WeightType == variant.WeightType)
                return v;
        }
        throw new ArgumentException(
            $"{op}: variant '{variant.Name}' ({variant.Op}, {variant.WeightType.Name()}) is not one of this device's for {type.Name()}: {string.Join(", ", variants.Select(x => x.Name))}",
            nameof(variant));
    }

    private static WeightFormat RequireWeightFormat(string op, string name, in TensorView view)
        => WeightFormats.TryGet(view.Type, out WeightFormat? format)
            ? format
            : throw new ArgumentException($"{op}: {name} must be one of {WeightFormats.Names}, got {view}", name);

    private static void RequireRows(string op, string name, in TensorView view, int rows, string expected)
    {
        if (view.Rows != rows)
            throw new ArgumentException($"{op}: {name} must be {expected}, got {view}", name);
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
