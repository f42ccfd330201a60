using Serving.Abstractions;

namespace Serving.Engine.Tuning;

/// <summary>Device time one op kind took over the profiled steps.</summary>
/// <param name="Op">Op name ("MatMul", "Attention", …; "Upload" for stream uploads).</param>
/// <param name="Seconds">Total device time.</param>
/// <param name="Count">Ops recorded.</param>
public sealed record OpTime(string Op, double Seconds, long Count);

/// <summary>
/// A device wrapper that times every op its streams record, on the device: while <see cref="Enabled"/>, a stream
/// timestamp (<see cref="IComputeStream.RecordTimestamp"/>) follows each op, and the time between consecutive
/// timestamps is charged to the op between them; results are read at each synchronize. Load a model on the wrapper to
/// get time per op per step (the profile <c>bench</c> draws). While disabled it only forwards, at no cost. Timestamps
/// between ops can keep a GPU from overlapping them, so profiled steps are slightly slower than unprofiled ones: the
/// bench times its steps with profiling off and reports the profile separately.
/// </summary>
public sealed class OpProfiler(IAccelerator inner) : IAccelerator
{
    private readonly Dictionary<string, (double Seconds, long Count)> _totals = [];
    private readonly object _gate = new();

    /// <summary>The wrapped device.</summary>
    public IAccelerator Inner { get; } = inner ?? throw new ArgumentNullException(nameof(inner));

    /// <summary>When true, ops recorded from now on are timed.</summary>
    public bool Enabled { get; set; }

    /// <summary>Why timing stopped (the device has no timestamps), or null.</summary>
    public string? Failure { get; private set; }

    /// <summary>Clears the totals.</summary>
    public void Reset()
    {
        lock (_gate) _totals.Clear();
    }

    /// <summary>Totals per op since the last <see cref="Reset"/>, largest first.</summary>
    public IReadOnlyList<OpTime> Totals()
    {
        lock (_gate) return [.. _totals.Select(kv => new OpTime(kv.Key, kv.Value.Seconds, kv.Value.Count)).OrderByDescending(o => o.Seconds)];
    }

    private void Add(string op, double seconds)
    {
        lock (_gate)
        {
            _totals.TryGetValue(op, out var t);
            _totals[op] = (t.Seconds + seconds, t.Count + 1);
        }
    }

    private void Fail(string why)
    {
        Failure ??= why;
        Enabled = false;
    }

    /// <inheritdoc/>
    public DeviceDescriptor Descriptor => Inner.Descriptor;
    /// <inheritdoc/>
    public long FreeMemoryBytes => Inner.FreeMemoryBytes;
    /// <inheritdoc/>
    public IEnergyMeter? EnergyMeter => Inner.EnergyMeter;
    /// <inheritdoc/>
    public IDeviceBuffer Allocate(long bytes) => Inner.Allocate(bytes);
    /// <inheritdoc/>
    public IDeviceWeight PrepareWeight(in WeightSource source) => Inner.PrepareWeight(source);
    /// <inheritdoc/>
    public IKvCache CreateKvCache(in KvCacheSpec spec) => Inner.CreateKvCache(spec);
    /// <inheritdoc/>
    public void Upload(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source) => Inner.Upload(destination, offset, source);
    /// <inheritdoc/>
    public void Download(IDeviceBuffer source, long offset, Span<byte> destination) => Inner.Download(source, offset, destination);
    /// <inheritdoc/>
    public IComputeStream CreateStream() => new Stream(this, Inner.CreateStream());
    /// <inheritdoc/>
    public OpSupport Supports(in OpQuery query) => Inner.Supports(query);
    /// <inheritdoc/>
    public IReadOnlyList<KernelVariant> GetVariants(OpKind op, DataType type) => Inner.GetVariants(op, type);
    /// <summary>Does not dispose the wrapped device (its owner does).</summary>
    public void Dispose()
    {
    }

    /// <summary>Forwards every call to the inner stream; brackets ops with timestamps while profiling.</summary>
    private sealed class Stream(OpProfiler owner, IComputeStream inner) : IComputeStream
    {
        private readonly List<(string Op, DeviceTimestamp Start, DeviceTimestamp End)> _pending = [];
        private DeviceTimestamp? _last;

        public IAccelerator Device => inner.Device;
        public bool Reproducible => inner.Reproducible;

        private void Timed(string op, Action run)
        {
            if (!owner.Enabled)
            {
                run();
                return;
            }
            bool ran = false;
            try
            {
                _last ??= inner.RecordTimestamp();
                run();
                ran = true;
                var end = inner.RecordTimestamp();
                _pending.Add((op, _last.Value, end));
                _last = end;
            }
            catch (NotSupportedException e) // no timestamps on this device: profiling stops, the op still runs once
            {
                owner.Fail(e.Message);
                _pending.Clear();
                _last = null;
                if (!ran) run();
            }
        }

        /// <summary>After a wait: charges every finished op its time, and starts the next chain afresh (host time between
        /// steps is nobody's).</summary>
        private void Resolve()
        {
            foreach (var (op, start, end) in _pending) owner.Add(op, inner.Elapsed(start, end).TotalSeconds);
            _pending.Clear();
            _last = null;
        }

        public void Embed(IDeviceWeight table, TensorView tokenIds, TensorView output, KernelVariant? variant = null) => Timed("Embed", () => inner.Embed(table, tokenIds, output, variant));
        public void RmsNorm(TensorView x, TensorView weight, TensorView y, float eps, KernelVariant? variant = null) => Timed("RmsNorm", () => inner.RmsNorm(x, weight, y, eps, variant));
        public void MatMul(TensorView x, IDeviceWeight weight, TensorView y, KernelVariant? variant = null) => Timed("MatMul", () => inner.MatMul(x, weight, y, variant));
        public void Rope(TensorView x, TensorView positions, in RopeConfig config, KernelVariant? variant = null)
        {
            var c = config;
            Timed("Rope", () => inner.Rope(x, positions, c, variant));
        }
        public void KvWrite(TensorView k, TensorView v, IKvCache cache, int layer, TensorView slots, KernelVariant? variant = null) => Timed("KvWrite", () => inner.KvWrite(k, v, cache, layer, slots, variant));
        public void Attention(TensorView q, IKvCache cache, int layer, in AttentionBatch batch, TensorView output, KernelVariant? variant = null)
        {
            var b = batch;
            Timed("Attention", () => inner.Attention(q, cache, layer, b, output, variant));
        }
        public void SwiGlu(TensorView gate, TensorView up, TensorView output, KernelVariant? variant = null) => Timed("SwiGlu", () => inner.SwiGlu(gate, up, output, variant));
        public void Add(TensorView a, TensorView b, TensorView output, KernelVariant? variant = null) => Timed("Add", () => inner.Add(a, b, output, variant));
        public void Copy(TensorView source, TensorView destination, KernelVariant? variant = null) => Timed("Copy", () => inner.Copy(source, destination, variant));
        public void Argmax(TensorView logits, TensorView output, KernelVariant? variant = null) => Timed("Argmax", () => inner.Argmax(logits, output, variant));
        public void Gather(TensorView source, TensorView rows, TensorView output, KernelVariant? variant = null) => Timed("Gather", () => inner.Gather(source, rows, output, variant));

        public void Upload(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
        {
            if (!owner.Enabled)
            {
                inner.Upload(destination, offset, source);
                return;
            }
            // A span cannot enter a lambda: Timed's bracketing, written out.
            bool ran = false;
            try
            {
                _last ??= inner.RecordTimestamp();
                inner.Upload(destination, offset, source);
                ran = true;
                var end = inner.RecordTimestamp();
                _pending.Add(("Upload", _last.Value, end));
                _last = end;
            }
            catch (NotSupportedException e)
            {
                owner.Fail(e.Message);
                _pending.Clear();
                _last = null;
                if (!ran) inner.Upload(destination, offset, source);
            }
        }

        public void Download(IDeviceBuffer source, long offset, Span<byte> destination)
        {
            inner.Download(source, offset, destination);
            Resolve();
        }

        public DeviceTimestamp RecordTimestamp() => inner.RecordTimestamp();
        public TimeSpan Elapsed(DeviceTimestamp start, DeviceTimestamp end) => inner.Elapsed(start, end);
        public void Flush()
        {
            inner.Flush();
            _last = null; // the next submission starts its own chain
        }

        public void Synchronize()
        {
            inner.Synchronize();
            Resolve();
        }

        public void Dispose() => inner.Dispose();
    }
}
