namespace Serving.Abstractions;

/// <summary>
/// The one front end every backend's stream derives from. Each public op checks its arguments the same way for every
/// backend (devices, disposal, types, shapes, bounds, aliasing, the variant and whether the stream may run it), then
/// calls the backend's <c>…Core</c> method with the resolved variant. A core method may assume all of that holds;
/// it must still never touch memory outside the op's outputs when an index value inside an I32 view is out of range
/// (GPU: clamp or skip; CPU: throw <see cref="ArgumentOutOfRangeException"/>), because the front end does not read
/// device memory. See docs/backends.md for every rule.
/// </summary>
public abstract partial class ComputeStream : IComputeStream
{
    private readonly List<KernelVariant> _noVariants = [];
    private bool _disposed;

    /// <summary>Creates the front end for a stream on <paramref name="device"/>.</summary>
    /// <param name="device">The device the stream belongs to (every view, weight and cache must be its own).</param>
    /// <param name="reproducible">True: refuse variants that are not batch-invariant.</param>
    protected ComputeStream(IAccelerator device, bool reproducible)
    {
        Device = device ?? throw new ArgumentNullException(nameof(device));
        Reproducible = reproducible;
    }

    /// <inheritdoc/>
    public IAccelerator Device { get; }

    /// <inheritdoc/>
    public bool Reproducible { get; }

    /// <summary>True once <see cref="Dispose()"/> ran.</summary>
    protected bool IsDisposed => _disposed;

    /// <inheritdoc/>
    public void Embed(IDeviceWeight table, TensorView tokenIds, TensorView output, KernelVariant? variant = null)
    {
        const string op = nameof(Embed);
        Enter();
        CheckWeight(op, nameof(table), table);
        CheckView(op, nameof(tokenIds), tokenIds, DataType.I32);
        RequireShape(op, nameof(tokenIds), tokenIds, 1, tokenIds.Cols, "[1, T]");
        CheckView(op, nameof(output), output, DataType.F32);
        RequireShape(op, nameof(output), output, tokenIds.Cols, table.Cols, "[T, D]");
        NoOverlap(op, nameof(output), output, nameof(tokenIds), tokenIds);
        KernelVariant v = Resolve(op, OpKind.Embed, table.Type, variant, tokenIds.Cols, table.Cols);
        if (tokenIds.Cols == 0) return;
        EmbedCore(table, tokenIds, output, v);
    }

    /// <inheritdoc/>
    public void RmsNorm(TensorView x, TensorView weight, TensorView y, float eps, KernelVariant? variant = null)
    {
        const string op = nameof(RmsNorm);
        Enter();
        CheckView(op, nameof(x), x, DataType.F32);
        CheckView(op, nameof(weight), weight, DataType.F32);
        CheckView(op, nameof(y), y, DataType.F32);
        RequireShape(op, nameof(weight), weight, 1, x.Cols, "[1, D]");
        RequireShape(op, nameof(y), y, x.Rows, x.Cols, "[T, D] like x");
        if (!(eps >= 0) || float.IsInfinity(eps))
            throw new ArgumentOutOfRangeException(nameof(eps), $"{op}: eps must be finite and ≥ 0, got {eps}");
        SameOrDisjoint(op, nameof(y), y, nameof(x), x);
        NoOverlap(op, nameof(y), y, nameof(weight), weight);
        KernelVariant v = Resolve(op, OpKind.RmsNorm, DataType.F32, variant, x.Rows, x.Cols);
        if (x.Rows == 0 || x.Cols == 0) return;
        RmsNormCore(x, weight, y, eps, v);
    }

    /// <inheritdoc/>
    public void MatMul(TensorView x, IDeviceWeight weight, TensorView y, KernelVariant? variant = null)
    {
        const string op = nameof(MatMul);
        Enter();
        CheckView(op, nameof(x), x, DataType.F32);
        CheckWeight(op, nameof(weight), weight);
        CheckView(op, nameof(y), y, DataType.F32);
        if (weight.Cols != x.Cols)
            throw new ArgumentException($"{op}: x {x} and weight [{weight.Rows}, {weight.Cols}] {weight.Type.Name()} disagree on K ({x.Cols} vs {weight.Cols})", nameof(weight));
        RequireShape(op, nameof(y), y, x.Rows, weight.Rows, "[T, N]");
        NoOverlap(op, nameof(y), y, nameof(x), x);
        KernelVariant v = Resolve(op, OpKind.MatMul, weight.Type, variant, x.Rows, x.Cols);
        if (x.Rows == 0) return;
        MatMulCore(x, weight, y, v);
    }

    /// <inheritdoc/>
    public void Rope(TensorView x, TensorView positions, in RopeConfig config, KernelVariant? variant = null)
    {
        const string op = nameof(Rope);
        Enter();
        CheckView(op, nameof(x), x, DataType.F32);
        CheckView(op, nameof(positions), positions, DataType.I32);
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
        CheckView(op, "InverseFrequencies", inv, DataType.F32);
        RequireShape(op, "InverseFrequencies", inv, 1, config.RotaryDim / 2, "[1, RotaryDim/2]");
        NoOverlap(op, nameof(x), x, nameof(positions), positions);
        NoOverlap(op, nameof(x), x, "InverseFrequencies", inv);
        KernelVariant v = Resolve(op, OpKind.Rope, DataType.F32, variant, x.Rows, config.HeadDim);
        if (config.RotaryDim == 0 || x.Rows == 0) return;
        RopeCore(x, positions, config, v);
    }

    /// <inheritdoc/>
    public void KvWrite(TensorView k, TensorView v, IKvCache cache, int layer, TensorView slots, KernelVariant? variant = null)
    {
        const string op = nameof(KvWrite);
        Enter();
        KvCacheLayout layout = CheckCache(op, cache, layer);
        CheckView(op, nameof(k), k, DataType.F32);
        CheckView(op, nameof(v), v, DataType.F32);
        RequireShape(op, nameof(k), k, k.Rows, layout.RowElements, "[T, Hkv·Dh]");
        RequireShape(op, nameof(v), v, k.Rows, layout.RowElements, "[T, Hkv·Dh] like k");
        CheckView(op, nameof(slots), slots, DataType.I32);
        RequireShape(op, nameof(slots), slots, 1, k.Rows, "[1, T]");
        KernelVariant kv = Resolve(op, OpKind.KvWrite, layout.Type, variant, k.Rows, layout.HeadDim);
        if (k.Rows == 0) return;
        KvWriteCore(k, v, cache, layer, slots, kv);
    }

    /// <inheritdoc/>
    public void Attention(TensorView q, IKvCache cache, int layer, in AttentionBatch batch, TensorView output, KernelVariant? variant = null)
    {
        const string op = nameof(Attention);
        Enter();
        KvCacheLayout layout = CheckCache(op, cache, layer);
        int heads = batch.Heads, dh = layout.HeadDim;
        if (heads <= 0 || heads % layout.KvHeads != 0)
            throw new ArgumentOutOfRangeException(nameof(batch), $"{op}: Heads ({heads}) must be a positive multiple of the cache's KvHeads ({layout.KvHeads})");
        if (!float.IsFinite(batch.Scale))
            throw new ArgumentOutOfRangeException(nameof(batch), $"{op}: Scale must be finite, got {batch.Scale}");
        CheckView(op, nameof(q), q, DataType.F32);
        if ((long)heads * dh != q.Cols)
            throw new ArgumentException($"{op}: q {q} must have H·Dh = {heads}·{dh} columns", nameof(q));
        int t = q.Rows;
        CheckView(op, nameof(output), output, DataType.F32);
        RequireShape(op, nameof(output), output, t, q.Cols, "[T, H·Dh] like q");
        CheckView(op, "Positions", batch.Positions, DataType.I32);
        RequireShape(op, "Positions", batch.Positions, 1, t, "[1, T]");
        CheckView(op, "Sequence", batch.Sequence, DataType.I32);
        RequireShape(op, "Sequence", batch.Sequence, 1, t, "[1, T]");
        CheckView(op, "BlockTables", batch.BlockTables, DataType.I32);
        if (t > 0 && (batch.BlockTables.Rows <= 0 || batch.BlockTables.Cols <= 0))
            throw new ArgumentException($"{op}: BlockTables {batch.BlockTables} must have at least one sequence and one block", nameof(batch));
        if (batch.MaxPosition < 0 || (t > 0 && batch.MaxPosition / layout.BlockSize >= batch.BlockTables.Cols))
            throw new ArgumentOutOfRangeException(nameof(batch),
                $"{op}: MaxPosition {batch.MaxPosition} is outside [0, {(long)batch.BlockTables.Cols * layout.BlockSize}) (BlockTables has {batch.BlockTables.Cols} blocks of {layout.BlockSize})");
        NoOverlap(op, nameof(output), output, nameof(q), q);
        NoOverlap(op, nameof(output), output, "Positions", batch.Positions);
        NoOverlap(op, nameof(output), output, "Sequence", batch.Sequence);
        NoOverlap(op, nameof(output), output, "BlockTables", batch.BlockTables);
        KernelVariant v = Resolve(op, OpKind.Attention, layout.Type, variant, t, dh);
        if (t == 0) return;
        AttentionCore(q, cache, layer, batch, output, v);
    }

    /// <inheritdoc/>
    public void SwiGlu(TensorView gate, TensorView up, TensorView output, KernelVariant? variant = null)
    {
        const string op = nameof(SwiGlu);
        Enter();
        CheckView(op, nameof(gate), gate, DataType.F32);
        CheckView(op, nameof(up), up, DataType.F32);
        CheckView(op, nameof(output), output, DataType.F32);
        RequireShape(op, nameof(up), up, gate.Rows, gate.Cols, "[T, F] like gate");
        RequireShape(op, nameof(output), output, gate.Rows, gate.Cols, "[T, F] like gate");
        SameOrDisjoint(op, nameof(output), output, nameof(gate), gate);
        SameOrDisjoint(op, nameof(output), output, nameof(up), up);
        KernelVariant v = Resolve(op, OpKind.SwiGlu, DataType.F32, variant, gate.Rows, gate.Cols);
        if (gate.ByteLength == 0) return;
        SwiGluCore(gate, up, output, v);
    }

    /// <inheritdoc/>
    public void Add(TensorView a, TensorView b, TensorView output, KernelVariant? variant = null)
    {
        const string op = nameof(Add);
        Enter();
        CheckView(op, nameof(a), a, DataType.F32);
        CheckView(op, nameof(b), b, DataType.F32);
        CheckView(op, nameof(output), output, DataType.F32);
        if (b.Cols != a.Cols || (b.Rows != a.Rows && b.Rows != 1))
            throw new ArgumentException($"{op}: b must be [{a.Rows}, {a.Cols}] like a, or one row [1, {a.Cols}] to broadcast, got {b}", nameof(b));
        RequireShape(op, nameof(output), output, a.Rows, a.Cols, "the shape of a");
        SameOrDisjoint(op, nameof(output), output, nameof(a), a);
        if (b.Rows == a.Rows) SameOrDisjoint(op, nameof(output), output, nameof(b), b);
        else NoOverlap(op, nameof(output), output, nameof(b), b);
        KernelVariant v = Resolve(op, OpKind.Add, DataType.F32, variant, a.Rows, a.Cols);
        if (a.ByteLength == 0) return;
        AddCore(a, b, output, v);
    }

    /// <inheritdoc/>
    public void Copy(TensorView source, TensorView destination, KernelVariant? variant = null)
    {
        const string op = nameof(Copy);
        Enter();
        CheckView(op, nameof(source), source);
        CheckView(op, nameof(destination), destination);
        if (source.ByteLength != destination.ByteLength)
            throw new ArgumentException($"{op}: source {source} is {source.ByteLength} bytes, destination {destination} is {destination.ByteLength}", nameof(destination));
        NoOverlap(op, nameof(destination), destination, nameof(source), source);
        KernelVariant v = Resolve(op, OpKind.Copy, DataType.F32, variant, source.Rows, source.Cols);
        if (source.ByteLength == 0) return;
        CopyCore(source, destination, v);
    }

    /// <inheritdoc/>
    public void Argmax(TensorView logits, TensorView output, KernelVariant? variant = null)
    {
        const string op = nameof(Argmax);
        Enter();
        CheckView(op, nameof(logits), logits, DataType.F32);
        CheckView(op, nameof(output), output, DataType.I32);
        RequireShape(op, nameof(output), output, 1, logits.Rows, "[1, T]");
        if (logits.Cols == 0 && logits.Rows > 0)
            throw new ArgumentException($"{op}: logits {logits} has empty rows", nameof(logits));
        NoOverlap(op, nameof(output), output, nameof(logits), logits);
        KernelVariant v = Resolve(op, OpKind.Argmax, DataType.F32, variant, logits.Rows, logits.Cols);
        if (logits.Rows == 0) return;
        ArgmaxCore(logits, output, v);
    }

    /// <inheritdoc/>
    public void Gather(TensorView source, TensorView rows, TensorView output, KernelVariant? variant = null)
    {
        const string op = nameof(Gather);
        Enter();
        CheckView(op, nameof(source), source, DataType.F32);
        CheckView(op, nameof(rows), rows, DataType.I32);
        RequireShape(op, nameof(rows), rows, 1, rows.Cols, "[1, R]");
        CheckView(op, nameof(output), output, DataType.F32);
        RequireShape(op, nameof(output), output, rows.Cols, source.Cols, "[R, D]");
        if (rows.Cols > 0 && source.Rows == 0)
            throw new ArgumentException($"{op}: source {source} has no rows to gather from", nameof(source));
        NoOverlap(op, nameof(output), output, nameof(source), source);
        NoOverlap(op, nameof(output), output, nameof(rows), rows);
        KernelVariant v = Resolve(op, OpKind.Gather, DataType.F32, variant, rows.Cols, source.Cols);
        if (output.ByteLength == 0) return;
        GatherCore(source, rows, output, v);
    }

    /// <inheritdoc/>
    public void Upload(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
    {
        Enter();
        CheckRange(nameof(Upload), nameof(destination), destination, offset, source.Length);
        if (source.Length == 0) return;
        UploadCore(destination, offset, source);
    }

    /// <inheritdoc/>
    public void Download(IDeviceBuffer source, long offset, Span<byte> destination)
    {
        Enter();
        CheckRange(nameof(Download), nameof(source), source, offset, destination.Length);
        DownloadCore(source, offset, destination);
    }

    /// <inheritdoc/>
    public DeviceTimestamp RecordTimestamp()
    {
        Enter();
        return new DeviceTimestamp(this, RecordTimestampCore());
    }

    /// <inheritdoc/>
    public TimeSpan Elapsed(DeviceTimestamp start, DeviceTimestamp end)
    {
        Enter();
        if (!ReferenceEquals(start.Stream, this) || !ReferenceEquals(end.Stream, this))
            throw new ArgumentException("Elapsed: both timestamps must come from this stream's RecordTimestamp", nameof(start));
        return ElapsedCore(start.Index, end.Index);
    }

    /// <inheritdoc/>
    public void Flush()
    {
        Enter();
        FlushCore();
    }

    /// <inheritdoc/>
    public void Synchronize()
    {
        Enter();
        SynchronizeCore();
    }

    /// <summary>Frees the stream's resources (once).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees what the backend's stream holds; called once.</summary>
    protected virtual void Dispose(bool disposing)
    {
    }

    /// <summary>Throws <see cref="ObjectDisposedException"/> or <see cref="AcceleratorException"/> when the stream or its device can no
    /// longer run ops. The base checks the stream; override to add the device (disposed, lost) and call the base.</summary>
    protected virtual void ThrowIfUnusable() => ObjectDisposedException.ThrowIf(_disposed, this);

    private void Enter() => ThrowIfUnusable();

    private KernelVariant Resolve(string op, OpKind kind, DataType type, KernelVariant? variant, int rows, int cols)
    {
        IReadOnlyList<KernelVariant> variants = Device.GetVariants(kind, type) ?? _noVariants;
        if (variants.Count == 0)
        {
            OpSupport support = Device.Supports(new OpQuery(kind, type));
            string why = support.Supported ? "it lists no variant for it" : support.Reason;
            throw new ArgumentException($"{op}: {Device.Descriptor.Id} does not run {kind} for {type.Name()}: {why}", nameof(variant));
        }
        if (variant is null)
            return variants[0];
        for (int i = 0; i < variants.Count; i++)
        {
            KernelVariant v = variants[i];
            if (v.Name != variant.Name || v.Op != variant.Op || v.WeightType != variant.WeightType)
                continue;
            if (!v.AppliesTo.Matches(rows, cols))
                throw new ArgumentException($"{op}: variant '{v.Name}' applies to {v.AppliesTo}, not to T = {rows}, cols = {cols}", nameof(variant));
            if (Reproducible && !v.BatchInvariant)
                throw new ArgumentException($"{op}: variant '{v.Name}' is not batch-invariant; this stream is reproducible (DeviceOptions.Reproducible)", nameof(variant));
            return v;
        }
        throw new ArgumentException(
            $"{op}: variant '{variant.Name}' ({variant.Op}, {variant.WeightType.Name()}) is not one of {Device.Descriptor.Id}'s for {type.Name()}: {string.Join(", ", variants.Select(x => x.Name))}",
            nameof(variant));
    }
}
