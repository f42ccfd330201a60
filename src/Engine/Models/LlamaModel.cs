using System.Runtime.InteropServices;
using Serving.Abstractions;
using Serving.Engine.Gguf;

namespace Serving.Engine.Models;

/// <summary>
/// A Llama-family decoder placed on one device, running batched forward steps over the device's paged KV cache.
/// Every op the model needs is asked of the device (<see cref="IAccelerator.Supports"/>, with types and shapes) before
/// anything is allocated. Weight matrices are prepared by the backend (<see cref="IAccelerator.PrepareWeight"/>: read
/// in place from the memory-mapped file where the device can, else copied or repacked once); small tensors (norms,
/// biases) are converted to F32 on the host. A step uploads its inputs on the stream, records every op, and
/// synchronizes once, at the download of its results: logits only for the rows that sample, one int per greedy row.
/// The step splits at its submission (<see cref="IPipelinedStepModel"/>): <see cref="BeginForward"/> records and
/// submits, <see cref="EndForward"/> waits and downloads, so the scheduler plans the next step while the device runs.
/// Legend: T = tokens in step, R = rows wanting logits, G = greedy rows among them, D = model dim, H/Hkv = heads,
/// Dh = head dim, F = FFN dim, V = vocab.
/// </summary>
public sealed partial class LlamaModel : IPipelinedStepModel, IDisposable
{
    private readonly IAccelerator _device;
    private readonly IComputeStream _stream;
    private readonly List<IDisposable> _owned = [];
    private readonly LlamaLayerWeights[] _layers;
    private readonly IDeviceWeight _tokenEmbedding;  // [V, D] any type
    private readonly IDeviceWeight _output;          // [V, D] any type (token_embd when tied)
    private readonly TensorView _outputNorm;         // F32 [1, D]
    private readonly TensorView _invFreq;            // F32 [1, RopeDim/2]
    private readonly IKvCache _kv;
    private readonly Tuning.KernelSelector _kernels; // the tuner's variant per (op, shape, batch); none = defaults
    private readonly IDeviceWeight? _finiteProbe;   // F32 [1, V] of ones: MatMul by it sums each logit row on the device

    // Scratch activations sized for MaxBatchTokens rows.
    private readonly IDeviceBuffer _x, _h, _q, _k, _v, _attn, _gate, _up, _logitsIn, _logits;             // F32
    private readonly IDeviceBuffer _ids, _positions, _seqRows, _slots, _blockTables, _logitOrder, _argmax; // I32
    private readonly IDeviceBuffer _rowSums;                                                               // F32 [T, 1]

    // Host scratch reused every step (the model allocates nothing per step).
    private readonly int[] _hostBlockTables;   // [MaxBatchSequences, MaxBlocksPerSequence]
    private readonly int[] _hostLogitOrder;    // [T]: logit rows that return logits, then the greedy ones
    private readonly int[] _hostArgmax;        // [T]: device argmax of the greedy rows, in _hostLogitOrder order
    private readonly float[] _hostRowSums;     // [T]: sum of each logit row, in _hostLogitOrder order (finite iff the row is)
    private readonly bool[] _seenSequence;     // [MaxBatchSequences]: contiguity check
    private readonly int[] _stepGreedyRows;    // [T]: the begun step's greedy logit rows r, ascending
    private bool _begun;                       // BeginForward ran; EndForward has not
    private int _stepRows, _stepGreedy;        // R and G of the begun step
    private StepBatch? _stepBatch;             // the begun step's batch: EndForward marks its NonFinite rows
    private bool _disposed;

    private LlamaModel(IAccelerator device, LlamaConfig config, ModelOptions options, GgufFile file, IProgress<(long Done, long Total)>? progress)
    {
        _device = device;
        Config = config;
        ContextLength = options.ContextLength > 0 ? options.ContextLength : Math.Min(config.ContextLength, 4096);
        MaxBatchTokens = options.MaxBatchTokens;
        MaxBatchSequences = options.MaxBatchSequences;
        KvBlockSize = options.KvBlockSize;
        MaxBlocksPerSequence = (ContextLength + KvBlockSize - 1) / KvBlockSize;
        if ((long)MaxBatchSequences * MaxBlocksPerSequence > 1 << 26)
            throw new ArgumentException($"{MaxBatchSequences} sequences × {MaxBlocksPerSequence} blocks per sequence is too large a block table; lower MaxBatchSequences or ContextLength");
        // Before anything is allocated: every op, type and shape the model will run.
        KvCacheType = ModelRequirements.Check(config, file, device, ContextLength, options.KvCacheType);
        try
        {
            var loader = new WeightLoader(this, file, device, options.UseMmap, progress, options.WeightType);
            _tokenEmbedding = loader.Matrix(new("token_embd.weight", config.VocabSize, config.Dim));
            _output = file.FindTensor("output.weight") is null ? _tokenEmbedding : loader.Matrix(new("output.weight", config.VocabSize, config.Dim));
            _outputNorm = loader.Vector("output_norm.weight", config.Dim);
            _layers = new LlamaLayerWeights[config.Layers];
            int qDim = config.Heads * config.HeadDim, kvDim = config.KvHeads * config.HeadDim;
            for (int l = 0; l < config.Layers; l++)
            {
                string p = $"blk.{l}.";
                _layers[l] = new LlamaLayerWeights
                {
                    AttnNorm = loader.Vector(p + "attn_norm.weight", config.Dim),
                    Wq = loader.Matrix(new(p + "attn_q.weight", qDim, config.Dim)),
                    Wk = loader.Matrix(new(p + "attn_k.weight", kvDim, config.Dim)),
                    Wv = loader.Matrix(new(p + "attn_v.weight", kvDim, config.Dim)),
                    Wo = loader.Matrix(new(p + "attn_output.weight", config.Dim, qDim)),
                    Bq = loader.OptionalVector(p + "attn_q.bias", qDim),
                    Bk = loader.OptionalVector(p + "attn_k.bias", kvDim),
                    Bv = loader.OptionalVector(p + "attn_v.bias", kvDim),
                    FfnNorm = loader.Vector(p + "ffn_norm.weight", config.Dim),
                    WGate = loader.Matrix(new(p + "ffn_gate.weight", config.FfnDim, config.Dim)),
                    WUp = loader.Matrix(new(p + "ffn_up.weight", config.FfnDim, config.Dim)),
                    WDown = loader.Matrix(new(p + "ffn_down.weight", config.Dim, config.FfnDim)),
                };
            }
            float[] factors = file.FindTensor("rope_freqs.weight") is { } rf ? loader.HostFloats(rf, config.RopeDim / 2) : [];
            _invFreq = UploadFloats(config.InverseFrequencies(factors));
            loader.Finish();

            long kvTokens = options.KvCacheTokens > 0
                ? options.KvCacheTokens
                : Math.Min((long)Math.Clamp(MaxBatchSequences, 1, 4) * ContextLength, Math.Max(ContextLength, device.FreeMemoryBytes / 4 / config.KvBytesPerToken(KvCacheType)));
            KvBlockCount = (int)Math.Min(int.MaxValue / KvBlockSize, (kvTokens + KvBlockSize - 1) / KvBlockSize);
            KvCacheSpec KvSpec() => new(config.Layers, KvBlockCount, KvBlockSize, config.KvHeads, config.HeadDim, KvCacheType);
            try
            {
                _kv = Own(device.CreateKvCache(KvSpec()));
            }
            catch (ArgumentException) when (options.KvCacheTokens == 0 && KvBlockCount > MaxBlocksPerSequence)
            {
                // The default asks for a context per sequence, up to four; a device that cannot shape a cache that large (a GPU whose
                // per-layer KV plane must fit one storage-buffer binding) still runs with one context's worth.
                KvBlockCount = MaxBlocksPerSequence;
                _kv = Own(device.CreateKvCache(KvSpec()));
            }
            KvCacheType = _kv.Layout.Type;

            int t = MaxBatchTokens;
            _x = F32(t, config.Dim);
            _h = F32(t, Math.Max(config.Dim, qDim));
            _q = F32(t, qDim);
            _k = F32(t, kvDim);
            _v = F32(t, kvDim);
            _attn = F32(t, qDim);
            _gate = F32(t, config.FfnDim);
            _up = F32(t, config.FfnDim);
            _logitsIn = F32(t, config.Dim);
            _logits = F32(t, config.VocabSize);
            _ids = I32(t);
            _positions = I32(t);
            _seqRows = I32(t);
            _slots = I32(t);
            _logitOrder = I32(t);
            _argmax = I32(t);
            _rowSums = F32(t, 1);
            _hostRowSums = new float[t];
            _finiteProbe = FiniteProbe(config.VocabSize);
            _hostBlockTables = new int[MaxBatchSequences * MaxBlocksPerSequence];
            _blockTables = I32(_hostBlockTables.Length);
            _hostLogitOrder = new int[t];
            _hostArgmax = new int[t];
            _seenSequence = new bool[MaxBatchSequences];
            _stepGreedyRows = new int[t];
            _stream = device.CreateStream();
            _kernels = options.Kernels?.Bind(device, _stream.Reproducible) ?? Tuning.KernelSelector.None;
        }
        catch
        {
            DisposeOwned();
            throw;
        }
    }

    /// <summary>
    /// Loads the model in <paramref name="file"/> onto <paramref name="device"/>. The file must stay open while
    /// the model lives (weights may be read from its mapping). Throws <see cref="ModelLoadException"/> for a
    /// file that is not a runnable model or a model the device cannot run (naming the op, type and shape);
    /// nothing stays allocated on failure.
    /// </summary>
    public static LlamaModel Load(GgufFile file, IAccelerator device, ModelOptions? options = null, IProgress<(long Done, long Total)>? progress = null)
    {
        options ??= new ModelOptions();
        options.Validate();
        var config = LlamaConfig.FromGguf(file);
        // Early exit (a self-draft): only the first blocks are loaded and run; the rest of the file is never read.
        if (options.LayerLimit > 0 && options.LayerLimit < config.Layers) config = config with { Layers = options.LayerLimit };
        return new LlamaModel(device, config, options, file, progress);
    }

    /// <summary>The hyper-parameters.</summary>
    public LlamaConfig Config { get; }

    /// <summary>The device the model runs on.</summary>
    public IAccelerator Device => _device;

    /// <summary>Bytes of weights the device reads per forward step (what decode must move through memory), as the file stores them.</summary>
    public long WeightBytes { get; private set; }

    /// <summary>True when every weight matrix is read in place from the memory-mapped file (zero copy).</summary>
    public bool WeightsMapped { get; private set; }

    /// <summary>The element type the KV cache stores (f16 or f32; see <see cref="ModelOptions.KvCacheType"/>).</summary>
    public DataType KvCacheType { get; }

    /// <inheritdoc/>
    public int VocabSize => Config.VocabSize;
    /// <inheritdoc/>
    public int ContextLength { get; }
    /// <inheritdoc/>
    public int KvBlockSize { get; }
    /// <inheritdoc/>
    public int KvBlockCount { get; }
    /// <inheritdoc/>
    public int MaxBatchTokens { get; }
    /// <inheritdoc/>
    public int MaxBatchSequences { get; }
    /// <summary>Columns of a block table: blocks one full context needs.</summary>
    public int MaxBlocksPerSequence { get; }

    /// <inheritdoc/>
    public void Forward(StepBatch batch, Span<float> logits) => Forward(batch, logits, Span<int>.Empty);

    /// <inheritdoc/>
    public void Forward(StepBatch batch, Span<float> logits, Span<int> greedyTokens)
    {
        ArgumentNullException.ThrowIfNull(batch);
        // The spans are checked before anything runs, as Validate checks the batch.
        CheckResultSpans(batch.LogitCount, batch.GreedyCount, logits, greedyTokens);
        BeginForward(batch);
        EndForward(logits, greedyTokens);
    }

    /// <inheritdoc/>
    public void BeginForward(StepBatch batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(batch);
        if (_begun) throw new InvalidOperationException("BeginForward: the previous step has not ended (call EndForward first)");
        StepFacts facts = Validate(batch);
        int T = batch.TokenCount, S = batch.SequenceCount, R = batch.LogitCount, G = batch.GreedyCount, L = R - G;
        _stepRows = 0;
        _stepGreedy = 0;
        if (T == 0)
        {
            _begun = true;
            return;
        }
        var c = Config;
        int qDim = c.Heads * c.HeadDim, kvDim = c.KvHeads * c.HeadDim;
        var st = _stream;

        // The step's small inputs go up on the stream: ordered with its ops, nothing waits.
        st.Upload(_ids, 0, MemoryMarshal.AsBytes(batch.Tokens.AsSpan(0, T)));
        st.Upload(_positions, 0, MemoryMarshal.AsBytes(batch.Positions.AsSpan(0, T)));
        st.Upload(_seqRows, 0, MemoryMarshal.AsBytes(batch.SequenceRows.AsSpan(0, T)));
        st.Upload(_slots, 0, MemoryMarshal.AsBytes(batch.Slots.AsSpan(0, T)));
        // The batch's table may be narrower than ours; repack rows to our width.
        int w = batch.MaxBlocksPerSequence, ours = MaxBlocksPerSequence, cols = Math.Min(w, ours);
        for (int s = 0; s < S; s++)
            batch.BlockTables.AsSpan(s * w, cols).CopyTo(_hostBlockTables.AsSpan(s * ours, cols));
        st.Upload(_blockTables, 0, MemoryMarshal.AsBytes(_hostBlockTables.AsSpan(0, S * ours)));
        // Rows through the output head: those returning logits first, then the greedy ones, each group ascending.
        bool gatherRows = OrderLogitRows(batch);
        if (gatherRows) st.Upload(_logitOrder, 0, MemoryMarshal.AsBytes(_hostLogitOrder.AsSpan(0, R)));

        var ids = View(_ids, DataType.I32, 1, T);
        var pos = View(_positions, DataType.I32, 1, T);
        var slots = View(_slots, DataType.I32, 1, T);
        var x = View(_x, DataType.F32, T, c.Dim);
        var h = View(_h, DataType.F32, T, c.Dim);
        var q = View(_q, DataType.F32, T, qDim);
        var k = View(_k, DataType.F32, T, kvDim);
        var v = View(_v, DataType.F32, T, kvDim);
        var attn = View(_attn, DataType.F32, T, qDim);
        var o = View(_h, DataType.F32, T, c.Dim);
        var gate = View(_gate, DataType.F32, T, c.FfnDim);
        var up = View(_up, DataType.F32, T, c.FfnDim);
        var ropeQ = new RopeConfig(c.Heads, c.HeadDim, c.RopeDim, c.RopeStyle, _invFreq);
        var ropeK = ropeQ with { Heads = c.KvHeads };
        var attnBatch = new AttentionBatch(pos, View(_seqRows, DataType.I32, 1, T), View(_blockTables, DataType.I32, S, ours),
            c.Heads, 1f / MathF.Sqrt(c.HeadDim), facts.MaxPosition, facts.ContiguousSequences);

        st.Embed(_tokenEmbedding, ids, x);
        for (int l = 0; l < _layers.Length; l++)
        {
            var lw = _layers[l];
            st.RmsNorm(x, lw.AttnNorm, h, c.RmsEps, Row(OpKind.RmsNorm, c.Dim, T));
            st.MatMul(h, lw.Wq, q, Mm(lw.Wq, T));
            st.MatMul(h, lw.Wk, k, Mm(lw.Wk, T));
            st.MatMul(h, lw.Wv, v, Mm(lw.Wv, T));
            // A bias is one row broadcast over the step's rows: one Add each (qwen2).
            if (lw.Bq is { } bq) st.Add(q, bq, q);
            if (lw.Bk is { } bk) st.Add(k, bk, k);
            if (lw.Bv is { } bv) st.Add(v, bv, v);
            st.Rope(q, pos, ropeQ);
            st.Rope(k, pos, ropeK);
            st.KvWrite(k, v, _kv, l, slots);
            st.Attention(q, _kv, l, attnBatch, attn);
            st.MatMul(attn, lw.Wo, o, Mm(lw.Wo, T));
            st.Add(x, o, x, Row(OpKind.Add, c.Dim, T));
            st.RmsNorm(x, lw.FfnNorm, h, c.RmsEps, Row(OpKind.RmsNorm, c.Dim, T));
            st.MatMul(h, lw.WGate, gate, Mm(lw.WGate, T));
            st.MatMul(h, lw.WUp, up, Mm(lw.WUp, T));
            st.SwiGlu(gate, up, gate, Row(OpKind.SwiGlu, c.FfnDim, T));
            st.MatMul(gate, lw.WDown, o, Mm(lw.WDown, T));
            st.Add(x, o, x, Row(OpKind.Add, c.Dim, T));
        }
        if (R == 0)
        {
            // Nothing comes back; the KV writes are ordered before the next step's ops on this stream.
            st.Flush();
            _begun = true;
            return;
        }

        // Only the rows that want logits go through the output head (for a prefill chunk just its last token, which
        // saves R/T of the largest matmul), gathered in one op when they are not already rows 0..R-1 in order.
        TensorView rows = x;
        if (gatherRows)
        {
            var gathered = View(_logitsIn, DataType.F32, R, c.Dim);
            st.Gather(x, View(_logitOrder, DataType.I32, 1, R), gathered);
            rows = gathered;
        }
        var normed = View(_logitsIn, DataType.F32, R, c.Dim);
        st.RmsNorm(rows, _outputNorm, normed, c.RmsEps, Row(OpKind.RmsNorm, c.Dim, R));
        var outLogits = View(_logits, DataType.F32, R, c.VocabSize);
        st.MatMul(normed, _output, outLogits, Mm(_output, R));
        // Each logit row's sum, by a MatMul with a row of ones: finite exactly when every logit of the row is (a NaN or an
        // infinity anywhere makes it NaN or infinite). It costs V multiply-adds per row (under 1/D of the output head's)
        // and R floats of download, so a greedy row, whose V logits never leave the device, is checked too.
        if (_finiteProbe is not null) st.MatMul(outLogits, _finiteProbe, View(_rowSums, DataType.F32, R, 1));
        // Greedy rows sit after the L sampled ones: one Argmax over them, T ints come back instead of T × V floats.
        if (G > 0) st.Argmax(outLogits.SliceRows(L, G), View(_argmax, DataType.I32, 1, G), Row(OpKind.Argmax, c.VocabSize, G));
        for (int g = 0, r = 0; r < R; r++)
            if (batch.Greedy[r]) _stepGreedyRows[g++] = r;
        _stepRows = R;
        _stepGreedy = G;
        _stepBatch = batch;
        // Submitted, not waited for: the device runs the step while the caller prepares the next one.
        st.Flush();
        _begun = true;
    }

    /// <inheritdoc/>
    public void EndForward(Span<float> logits, Span<int> greedyTokens)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_begun) throw new InvalidOperationException("EndForward: no step was begun (call BeginForward first)");
        _begun = false;
        int R = _stepRows, G = _stepGreedy, L = R - G;
        StepBatch batch = _stepBatch!;
        _stepBatch = null;
        if (R == 0) return;
        CheckResultSpans(R, G, logits, greedyTokens);
        var st = _stream;
        int V = Config.VocabSize;
        if (G > 0)
        {
            st.Download(_argmax, 0, MemoryMarshal.AsBytes(_hostArgmax.AsSpan(0, G)));
            for (int g = 0; g < G; g++) greedyTokens[_stepGreedyRows[g]] = _hostArgmax[g];
        }
        // The first download waited for the step; later ones only copy.
        if (_finiteProbe is not null) st.Download(_rowSums, 0, MemoryMarshal.AsBytes(_hostRowSums.AsSpan(0, R)));
        if (L > 0) st.Download(_logits, 0, MemoryMarshal.AsBytes(logits[..(L * V)]));
        for (int r = 0, sampled = 0, greedy = L; r < R; r++)
        {
            // _hostRowSums is in output-head order: the sampled rows first, then the greedy ones.
            int row = batch.Greedy[r] ? greedy++ : sampled++;
            batch.NonFinite[r] = _finiteProbe is not null
                ? !float.IsFinite(_hostRowSums[row])
                : !batch.Greedy[r] && !AllFinite(logits.Slice(row * V, V));
        }
    }

    private void CheckResultSpans(int rows, int greedy, Span<float> logits, Span<int> greedyTokens)
    {
        if (logits.Length < (long)(rows - greedy) * VocabSize) throw new ArgumentException($"logits span holds {logits.Length} floats; needs {rows - greedy} × {VocabSize}");
        if (greedy > 0 && greedyTokens.Length < rows) throw new ArgumentException($"greedy token span holds {greedyTokens.Length} ints; the step has {rows} logit rows, {greedy} of them greedy");
    }

    /// <summary>
    /// The finiteness probe: a [1, V] F32 weight of ones, or null when the device cannot multiply by it (then only the
    /// rows whose logits come back to the host are checked there, and greedy rows are not).
    /// </summary>
    private unsafe IDeviceWeight? FiniteProbe(int vocab)
    {
        if (!_device.Supports(new OpQuery(OpKind.MatMul, DataType.F32, 1, vocab)).Supported) return null;
        float[] ones = new float[vocab];
        Array.Fill(ones, 1f);
        fixed (float* p = ones)
            return Own(_device.PrepareWeight(new WeightSource("finite-probe", (nint)p, (long)vocab * sizeof(float), DataType.F32, 1, vocab, Persistent: false)));
    }

    private static bool AllFinite(ReadOnlySpan<float> x)
    {
        foreach (float v in x)
            if (!float.IsFinite(v)) return false;
        return true;
    }

    /// <summary>
    /// Fills <see cref="_hostLogitOrder"/> with the step rows whose logits the output head computes: the logit rows
    /// that return logits, then the greedy ones. Returns false when that is rows 0..R-1 in order (no gather needed).
    /// </summary>
    private bool OrderLogitRows(StepBatch batch)
    {
        int R = batch.LogitCount, n = 0;
        for (int r = 0; r < R; r++)
            if (!batch.Greedy[r]) _hostLogitOrder[n++] = batch.LogitRows[r];
        for (int r = 0; r < R; r++)
            if (batch.Greedy[r]) _hostLogitOrder[n++] = batch.LogitRows[r];
        if (R != batch.TokenCount) return true;
        for (int i = 0; i < R; i++)
            if (_hostLogitOrder[i] != i) return true;
        return false;
    }

    /// <summary>Host facts about a step that <see cref="AttentionBatch"/> carries to the device.</summary>
    private readonly record struct StepFacts(int MaxPosition, bool ContiguousSequences);

    /// <summary>
    /// Checks every index value of the step on the host (the device front end checks shapes, not the values inside
    /// I32 views: docs/backends.md) and computes the facts attention needs. Throws <see cref="ArgumentException"/>.
    /// </summary>
    private StepFacts Validate(StepBatch batch)
    {
        int T = batch.TokenCount, S = batch.SequenceCount, R = batch.LogitCount, G = batch.GreedyCount;
        if (T < 0 || T > batch.Tokens.Length || R < 0 || R > batch.LogitRows.Length || S < 0 || (long)S * batch.MaxBlocksPerSequence > batch.BlockTables.Length)
            throw new ArgumentException($"batch counts (T {T}, S {S}, R {R}) exceed its own arrays");
        if (T > MaxBatchTokens) throw new ArgumentException($"step has {T} tokens; at most {MaxBatchTokens}");
        if (S > MaxBatchSequences) throw new ArgumentException($"step has {S} sequences; at most {MaxBatchSequences}");
        if (R > T) throw new ArgumentException($"step asks logits for {R} rows of {T}");
        if (G < 0 || G > R) throw new ArgumentException($"step counts {G} greedy rows of {R} logit rows");
        long slots = (long)KvBlockCount * KvBlockSize;
        int maxPosition = 0;
        bool contiguous = true;
        Array.Clear(_seenSequence, 0, Math.Max(0, S));
        for (int t = 0; t < T; t++)
        {
            if ((uint)batch.Tokens[t] >= (uint)VocabSize) throw new ArgumentException($"token {batch.Tokens[t]} at row {t} outside vocab [0, {VocabSize})");
            if ((uint)batch.Positions[t] >= (uint)ContextLength) throw new ArgumentException($"position {batch.Positions[t]} at row {t} outside context [0, {ContextLength})");
            if ((uint)batch.SequenceRows[t] >= (uint)S) throw new ArgumentException($"sequence row {batch.SequenceRows[t]} at row {t} outside [0, {S})");
            if ((ulong)batch.Slots[t] >= (ulong)slots) throw new ArgumentException($"slot {batch.Slots[t]} at row {t} outside cache [0, {slots})");
            int blocksNeeded = batch.Positions[t] / KvBlockSize + 1;
            if (blocksNeeded > batch.MaxBlocksPerSequence) throw new ArgumentException($"position {batch.Positions[t]} needs {blocksNeeded} blocks; table has {batch.MaxBlocksPerSequence}");
            // KvWrite uses the slot, Attention the block table: they must name the same place or attention reads
            // keys that were never written.
            int expected = batch.BlockTables[batch.SequenceRows[t] * batch.MaxBlocksPerSequence + batch.Positions[t] / KvBlockSize] * KvBlockSize + batch.Positions[t] % KvBlockSize;
            if (batch.Slots[t] != expected) throw new ArgumentException($"slot {batch.Slots[t]} at row {t} does not match its block table (position {batch.Positions[t]} lives in slot {expected})");
            maxPosition = Math.Max(maxPosition, batch.Positions[t]);
            int seq = batch.SequenceRows[t];
            if (t > 0 && seq == batch.SequenceRows[t - 1])
                contiguous &= batch.Positions[t] > batch.Positions[t - 1];
            else
            {
                contiguous &= !_seenSequence[seq];
                _seenSequence[seq] = true;
            }
        }
        for (int i = 0; i < S * batch.MaxBlocksPerSequence; i++)
            if (batch.BlockTables[i] < 0 || batch.BlockTables[i] >= KvBlockCount)
            {
                // Unused entries past a sequence's length are never read; only used ones must be valid.
                int s = i / batch.MaxBlocksPerSequence, b = i % batch.MaxBlocksPerSequence;
                if (UsesBlock(batch, s, b)) throw new ArgumentException($"block table [{s}, {b}] = {batch.BlockTables[i]} outside [0, {KvBlockCount})");
            }
        int greedy = 0;
        for (int r = 0; r < R; r++)
        {
            if ((uint)batch.LogitRows[r] >= (uint)T || (r > 0 && batch.LogitRows[r] <= batch.LogitRows[r - 1]))
                throw new ArgumentException("logit rows must be ascending rows of the step");
            if (batch.Greedy[r]) greedy++;
        }
        if (greedy != G) throw new ArgumentException($"batch counts {G} greedy rows but flags {greedy}");
        return new StepFacts(maxPosition, contiguous);
    }

    private bool UsesBlock(StepBatch batch, int s, int b)
    {
        for (int t = 0; t < batch.TokenCount; t++)
            if (batch.SequenceRows[t] == s && batch.Positions[t] / KvBlockSize >= b) return true;
        return false;
    }

    /// <summary>The tuner's MatMul variant for <paramref name="w"/> at <paramref name="t"/> rows (null = default).</summary>
    private KernelVariant? Mm(IDeviceWeight w, int t) => _kernels.For(OpKind.MatMul, w.Type, w.Rows, w.Cols, t);

    /// <summary>The tuner's variant for a row op of width <paramref name="cols"/> at <paramref name="t"/> rows (null = default).</summary>
    private KernelVariant? Row(OpKind op, int cols, int t) => _kernels.For(op, DataType.F32, 0, cols, t);

    private static TensorView View(IDeviceBuffer b, DataType type, int rows, int cols) => new(b, 0, type, rows, cols);

    private IDeviceBuffer F32(int rows, int cols) => Own(_device.Allocate((long)rows * cols * sizeof(float)));

    private IDeviceBuffer I32(int n) => Own(_device.Allocate(Math.Max(1, n) * sizeof(int)));

    private T Own<T>(T owned) where T : IDisposable
    {
        _owned.Add(owned);
        return owned;
    }

    private TensorView UploadFloats(ReadOnlySpan<float> values)
    {
        var b = Own(_device.Allocate(values.Length * sizeof(float)));
        _device.Upload(b, 0, MemoryMarshal.AsBytes(values));
        return new TensorView(b, 0, DataType.F32, 1, values.Length);
    }

    private void DisposeOwned()
    {
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
    }

    /// <summary>Frees everything the model holds on the device (prepared weights, KV cache, scratch, its stream).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stream?.Dispose();
        DisposeOwned();
    }
}
