using System.Runtime.InteropServices;
using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Quantization;

namespace Serving.Engine.Models;

/// <summary>
/// A Llama-family decoder placed on one device, running batched forward steps over a paged KV cache.
/// Weights stay in the memory-mapped GGUF file where the device can read host memory (zero copy); otherwise
/// they are uploaded once. Small tensors (norms, biases) are converted to F32 on the host.
/// Legend: T = tokens in step, R = rows wanting logits, D = model dim, H/Hkv = heads, Dh = head dim,
/// F = FFN dim, V = vocab.
/// </summary>
public sealed class LlamaModel : IStepModel, IDisposable
{
    private readonly IAccelerator _device;
    private readonly IComputeStream _stream;
    private readonly List<IDeviceBuffer> _owned = [];
    private readonly LlamaLayerWeights[] _layers;
    private readonly TensorView _tokenEmbedding;   // [V, D] any type
    private readonly TensorView _outputNorm;       // F32 [1, D]
    private readonly TensorView _output;           // [V, D] any type (token_embd when tied)
    private readonly TensorView _invFreq;          // F32 [1, RopeDim/2]
    private readonly KvCacheView _kv;

    // Scratch activations sized for MaxBatchTokens rows.
    private readonly IDeviceBuffer _x, _h, _q, _k, _v, _attn, _gate, _up, _logitsIn, _logits; // F32
    private readonly IDeviceBuffer _ids, _positions, _seqRows, _slots, _blockTables;            // I32
    private readonly int[] _hostBlockTables;
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
        try
        {
            var loader = new WeightLoader(this, file, device, options.UseMmap, progress);
            _tokenEmbedding = loader.Matrix("token_embd.weight", config.VocabSize, config.Dim);
            _output = file.FindTensor("output.weight") is null ? _tokenEmbedding : loader.Matrix("output.weight", config.VocabSize, config.Dim);
            _outputNorm = loader.Vector("output_norm.weight", config.Dim);
            _layers = new LlamaLayerWeights[config.Layers];
            int qDim = config.Heads * config.HeadDim, kvDim = config.KvHeads * config.HeadDim;
            for (int l = 0; l < config.Layers; l++)
            {
                string p = $"blk.{l}.";
                _layers[l] = new LlamaLayerWeights
                {
                    AttnNorm = loader.Vector(p + "attn_norm.weight", config.Dim),
                    Wq = loader.Matrix(p + "attn_q.weight", qDim, config.Dim),
                    Wk = loader.Matrix(p + "attn_k.weight", kvDim, config.Dim),
                    Wv = loader.Matrix(p + "attn_v.weight", kvDim, config.Dim),
                    Wo = loader.Matrix(p + "attn_output.weight", config.Dim, qDim),
                    Bq = loader.OptionalVector(p + "attn_q.bias", qDim),
                    Bk = loader.OptionalVector(p + "attn_k.bias", kvDim),
                    Bv = loader.OptionalVector(p + "attn_v.bias", kvDim),
                    FfnNorm = loader.Vector(p + "ffn_norm.weight", config.Dim),
                    WGate = loader.Matrix(p + "ffn_gate.weight", config.FfnDim, config.Dim),
                    WUp = loader.Matrix(p + "ffn_up.weight", config.FfnDim, config.Dim),
                    WDown = loader.Matrix(p + "ffn_down.weight", config.Dim, config.FfnDim),
                };
            }
            float[] factors = file.FindTensor("rope_freqs.weight") is { } rf ? loader.HostFloats(rf, config.RopeDim / 2) : [];
            _invFreq = UploadFloats(config.InverseFrequencies(factors));
            loader.Finish();

            long kvTokens = options.KvCacheTokens > 0
                ? options.KvCacheTokens
                : Math.Min(4L * ContextLength, Math.Max(ContextLength, device.FreeMemoryBytes / 4 / config.KvBytesPerToken));
            KvBlockCount = (int)Math.Min(int.MaxValue / KvBlockSize, (kvTokens + KvBlockSize - 1) / KvBlockSize);
            var layout = new KvCacheLayout(config.Layers, KvBlockCount, KvBlockSize, config.KvHeads, config.HeadDim, DataType.F32);
            _kv = new KvCacheView(Own(device.Allocate(layout.BytesPerTensor)), Own(device.Allocate(layout.BytesPerTensor)), layout);

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
            _hostBlockTables = new int[MaxBatchSequences * MaxBlocksPerSequence];
            _blockTables = I32(_hostBlockTables.Length);
            _stream = device.CreateStream();
        }
        catch
        {
            DisposeBuffers();
            throw;
        }
    }

    /// <summary>
    /// Loads the model in <paramref name="file"/> onto <paramref name="device"/>. The file must stay open while
    /// the model lives (weights may be read from its mapping). Throws <see cref="ModelLoadException"/> for a
    /// file that is not a runnable model; nothing stays allocated on failure.
    /// </summary>
    public static LlamaModel Load(GgufFile file, IAccelerator device, ModelOptions? options = null, IProgress<(long Done, long Total)>? progress = null)
    {
        options ??= new ModelOptions();
        options.Validate();
        return new LlamaModel(device, LlamaConfig.FromGguf(file), options, file, progress);
    }

    /// <summary>The hyper-parameters.</summary>
    public LlamaConfig Config { get; }

    /// <summary>The device the model runs on.</summary>
    public IAccelerator Device => _device;

    /// <summary>Bytes of weights the device reads per forward step (what decode must move through memory).</summary>
    public long WeightBytes { get; private set; }

    /// <summary>True when the weights are read in place from the memory-mapped file.</summary>
    public bool WeightsMapped { get; private set; }

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
    public void Forward(StepBatch batch, Span<float> logits)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int T = batch.TokenCount, S = batch.SequenceCount, R = batch.LogitCount;
        Validate(batch, logits);
        if (T == 0) return;
        var c = Config;
        int qDim = c.Heads * c.HeadDim, kvDim = c.KvHeads * c.HeadDim;

        _device.Upload(_ids, 0, MemoryMarshal.AsBytes(batch.Tokens.AsSpan(0, T)));
        _device.Upload(_positions, 0, MemoryMarshal.AsBytes(batch.Positions.AsSpan(0, T)));
        _device.Upload(_seqRows, 0, MemoryMarshal.AsBytes(batch.SequenceRows.AsSpan(0, T)));
        _device.Upload(_slots, 0, MemoryMarshal.AsBytes(batch.Slots.AsSpan(0, T)));
        // The batch's table may be narrower than ours; repack rows to our width.
        int w = batch.MaxBlocksPerSequence, ours = MaxBlocksPerSequence, cols = Math.Min(w, ours);
        for (int s = 0; s < S; s++)
            batch.BlockTables.AsSpan(s * w, cols).CopyTo(_hostBlockTables.AsSpan(s * ours, cols));
        _device.Upload(_blockTables, 0, MemoryMarshal.AsBytes(_hostBlockTables.AsSpan(0, S * ours)));

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
        var attnBatch = new AttentionBatch(pos, View(_seqRows, DataType.I32, 1, T),
            View(_blockTables, DataType.I32, S, ours), c.Heads, 1f / MathF.Sqrt(c.HeadDim));

        var st = _stream;
        st.Embed(_tokenEmbedding, ids, x);
        for (int l = 0; l < _layers.Length; l++)
        {
            var L = _layers[l];
            st.RmsNorm(x, L.AttnNorm, h, c.RmsEps);
            st.MatMul(h, L.Wq, q);
            st.MatMul(h, L.Wk, k);
            st.MatMul(h, L.Wv, v);
            if (L.Bq is { } bq) AddBias(q, bq);
            if (L.Bk is { } bk) AddBias(k, bk);
            if (L.Bv is { } bv) AddBias(v, bv);
            st.Rope(q, pos, ropeQ);
            st.Rope(k, pos, ropeK);
            st.KvWrite(k, v, _kv, l, slots);
            st.Attention(q, _kv, l, attnBatch, attn);
            st.MatMul(attn, L.Wo, o);
            st.Add(x, o, x);
            st.RmsNorm(x, L.FfnNorm, h, c.RmsEps);
            st.MatMul(h, L.WGate, gate);
            st.MatMul(h, L.WUp, up);
            st.SwiGlu(gate, up, gate);
            st.MatMul(gate, L.WDown, o);
            st.Add(x, o, x);
        }
        if (R == 0)
        {
            st.Synchronize();
            return;
        }

        // Only the rows that want logits go through the output head: for decode that is every row, for a
        // prefill chunk just its last token, which saves R/T of the largest matmul.
        TensorView rows = x;
        if (!IsIdentity(batch.LogitRows, R, T))
        {
            var gathered = View(_logitsIn, DataType.F32, R, c.Dim);
            for (int r = 0; r < R; r++)
                st.Copy(x.SliceRows(batch.LogitRows[r], 1), gathered.SliceRows(r, 1));
            rows = gathered;
        }
        var normed = View(_logitsIn, DataType.F32, R, c.Dim);
        st.RmsNorm(rows, _outputNorm, normed, c.RmsEps);
        var outLogits = View(_logits, DataType.F32, R, c.VocabSize);
        st.MatMul(normed, _output, outLogits);
        _device.Download(_logits, 0, MemoryMarshal.AsBytes(logits[..(R * c.VocabSize)]));
    }

    private void AddBias(TensorView y, TensorView bias)
    {
        // Op set v1's Add has no broadcast; a bias row is added per token (T small ops, only for qwen2).
        for (int t = 0; t < y.Rows; t++)
        {
            var row = y.SliceRows(t, 1);
            _stream.Add(row, bias, row);
        }
    }

    private static bool IsIdentity(int[] rows, int r, int t)
    {
        if (r != t) return false;
        for (int i = 0; i < r; i++)
            if (rows[i] != i) return false;
        return true;
    }

    private void Validate(StepBatch batch, Span<float> logits)
    {
        int T = batch.TokenCount, S = batch.SequenceCount, R = batch.LogitCount;
        if (T > batch.Tokens.Length || R > batch.LogitRows.Length || (long)S * batch.MaxBlocksPerSequence > batch.BlockTables.Length)
            throw new ArgumentException($"batch counts (T {T}, S {S}, R {R}) exceed its own arrays");
        if (T < 0 || T > MaxBatchTokens) throw new ArgumentException($"step has {T} tokens; at most {MaxBatchTokens}");
        if (S < 0 || S > MaxBatchSequences) throw new ArgumentException($"step has {S} sequences; at most {MaxBatchSequences}");
        if (R < 0 || R > T) throw new ArgumentException($"step asks logits for {R} rows of {T}");
        if (logits.Length < (long)R * VocabSize) throw new ArgumentException($"logits span holds {logits.Length} floats; needs {R} × {VocabSize}");
        long slots = (long)KvBlockCount * KvBlockSize;
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
        }
        for (int i = 0; i < S * batch.MaxBlocksPerSequence; i++)
            if (batch.BlockTables[i] < 0 || batch.BlockTables[i] >= KvBlockCount)
            {
                // Unused entries past a sequence's length are never read; only used ones must be valid.
                int s = i / batch.MaxBlocksPerSequence, b = i % batch.MaxBlocksPerSequence;
                if (UsesBlock(batch, s, b)) throw new ArgumentException($"block table [{s}, {b}] = {batch.BlockTables[i]} outside [0, {KvBlockCount})");
            }
        for (int r = 0; r < R; r++)
            if ((uint)batch.LogitRows[r] >= (uint)T || (r > 0 && batch.LogitRows[r] <= batch.LogitRows[r - 1]))
                throw new ArgumentException("logit rows must be ascending rows of the step");
    }

    private bool UsesBlock(StepBatch batch, int s, int b)
    {
        for (int t = 0; t < batch.TokenCount; t++)
            if (batch.SequenceRows[t] == s && batch.Positions[t] / KvBlockSize >= b) return true;
        return false;
    }

    private static TensorView View(IDeviceBuffer b, DataType type, int rows, int cols) => new(b, 0, type, rows, cols);

    private IDeviceBuffer F32(int rows, int cols) => Own(_device.Allocate((long)rows * cols * sizeof(float)));

    private IDeviceBuffer I32(int n) => Own(_device.Allocate(Math.Max(1, n) * sizeof(int)));

    private IDeviceBuffer Own(IDeviceBuffer b)
    {
        _owned.Add(b);
        return b;
    }

    private TensorView UploadFloats(ReadOnlySpan<float> values)
    {
        var b = Own(_device.Allocate(values.Length * sizeof(float)));
        _device.Upload(b, 0, MemoryMarshal.AsBytes(values));
        return new TensorView(b, 0, DataType.F32, 1, values.Length);
    }

    private void DisposeBuffers()
    {
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
    }

    /// <summary>Frees every device buffer of the model (weights mapping, KV cache, scratch).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stream?.Dispose();
        DisposeBuffers();
    }

    /// <summary>Places tensors on the device: one zero-copy wrap of the file, or one upload per tensor.</summary>
    private sealed unsafe class WeightLoader
    {
        private readonly LlamaModel _model;
        private readonly GgufFile _file;
        private readonly IAccelerator _device;
        private readonly IDeviceBuffer? _mapped;
        private readonly IProgress<(long Done, long Total)>? _progress;
        private readonly long _total;
        private long _done;

        public WeightLoader(LlamaModel model, GgufFile file, IAccelerator device, bool useMmap, IProgress<(long, long)>? progress)
        {
            _model = model;
            _file = file;
            _device = device;
            _progress = progress;
            _total = file.Tensors.Sum(t => t.ByteSize);
            if (useMmap && device.TryWrapHostMemory((nint)file.BasePointer, file.FileLength, out var mapped) && mapped is not null)
            {
                _mapped = model.Own(mapped);
                model.WeightsMapped = true;
            }
        }

        /// <summary>A weight matrix [rows, cols] (GGUF dims {cols, rows}) of any type the device multiplies.</summary>
        public TensorView Matrix(string name, int rows, int cols)
        {
            var t = Find(name);
            if (t.Dims.Length != 2 || t.Dims[0] != cols || t.Dims[1] != rows)
                throw new ModelLoadException(name, $"shape [{string.Join(", ", t.Dims)}], expected [{cols}, {rows}]");
            if (!t.IsImplementedType)
                throw new ModelLoadException(name, $"tensor type {t.TypeName} is not supported yet (supported: {WeightFormats.Names})");
            var type = t.Type;
            var support = _device.Supports(OpKind.MatMul, type);
            if (!support.Supported)
                throw new ModelLoadException(name, $"{type.Name()} weights: {_device.Descriptor.Id} cannot multiply them ({support.Reason})");
            if (name == "token_embd.weight" && _device.Supports(OpKind.Embed, type) is { Supported: false } embed)
                throw new ModelLoadException(name, $"{type.Name()} embeddings: {_device.Descriptor.Id} cannot look them up ({embed.Reason})");
            _model.WeightBytes += t.ByteSize;
            if (_mapped is not null)
            {
                Advance(t.ByteSize);
                return new TensorView(_mapped, t.Offset, type, rows, cols);
            }
            var b = _model.Own(_device.Allocate(t.ByteSize));
            const long chunk = 64 << 20;
            for (long off = 0; off < t.ByteSize; off += chunk)
            {
                long n = Math.Min(chunk, t.ByteSize - off);
                _device.Upload(b, off, new ReadOnlySpan<byte>(_file.BasePointer + t.Offset + off, (int)n));
                Advance(n);
            }
            return new TensorView(b, 0, type, rows, cols);
        }

        /// <summary>A 1-D tensor of <paramref name="length"/> elements, converted to F32 on the host.</summary>
        public TensorView Vector(string name, int length) => Small(Find(name), length);

        public TensorView? OptionalVector(string name, int length) => _file.FindTensor(name) is { } t ? Small(t, length) : null;

        public float[] HostFloats(GgufTensorInfo t, int length)
        {
            if (t.Dims.Length != 1 || t.Dims[0] != length)
                throw new ModelLoadException(t.Name, $"shape [{string.Join(", ", t.Dims)}], expected [{length}]");
            if (!t.IsImplementedType)
                throw new ModelLoadException(t.Name, $"tensor type {t.TypeName} is not supported for a vector");
            var values = new float[length];
            Dequantizer.DequantizeRow(t.Type, _file.GetTensorBytes(t), values);
            if (!values.All(float.IsFinite)) throw new ModelLoadException(t.Name, "holds NaN or Inf");
            Advance(t.ByteSize);
            return values;
        }

        private TensorView Small(GgufTensorInfo t, int length)
        {
            // Norms and biases are tiny (D floats); one buffer each keeps the views simple.
            float[] values = HostFloats(t, length);
            var b = _model.Own(_device.Allocate(length * sizeof(float)));
            _device.Upload(b, 0, MemoryMarshal.AsBytes(values.AsSpan()));
            return new TensorView(b, 0, DataType.F32, 1, length);
        }

        private GgufTensorInfo Find(string name) =>
            _file.FindTensor(name) ?? throw new ModelLoadException(name, "missing required tensor");

        private void Advance(long n)
        {
            _done += n;
            _progress?.Report((_done, _total));
        }

        public void Finish()
        {
            _progress?.Report((_total, _total));
        }
    }
}
