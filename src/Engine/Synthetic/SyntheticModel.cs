using System.Buffers;
using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Quantization;

namespace Serving.Engine.Synthetic;

/// <summary>
/// Creates Llama-architecture GGUF files of real shapes with seeded random weights, for benchmarks and tests
/// when no real model is at hand. The files use llama.cpp's standard keys and tensor names, so llama.cpp
/// loads them unchanged. Embeddings are tied (no output.weight). Same shape, type and seed → byte-identical file.
/// Legend: D = model dim, F = FFN dim, V = vocab, Dkv = kv heads · head dim; dims are ggml order {ne0, ne1}.
/// </summary>
public static class SyntheticModel
{
    /// <summary>The named shapes: tiny (llama2.c stories15M), 1b (Llama-3.2-1B), 3b (Llama-3.2-3B), 8b (Llama-3-8B); all with the 32000-token llama vocabulary.</summary>
    public static IReadOnlyDictionary<string, SyntheticShape> Shapes { get; } = new Dictionary<string, SyntheticShape>(StringComparer.OrdinalIgnoreCase)
    {
        ["tiny"] = new("tiny", Dim: 288, Layers: 6, Heads: 6, KvHeads: 6, FeedForward: 768, Vocab: 32000, Context: 2048, RopeTheta: 10000f),
        ["1b"] = new("1b", Dim: 2048, Layers: 16, Heads: 32, KvHeads: 8, FeedForward: 8192, Vocab: 32000, Context: 2048, RopeTheta: 500000f),
        ["3b"] = new("3b", Dim: 3072, Layers: 28, Heads: 24, KvHeads: 8, FeedForward: 8192, Vocab: 32000, Context: 2048, RopeTheta: 500000f),
        ["8b"] = new("8b", Dim: 4096, Layers: 32, Heads: 32, KvHeads: 8, FeedForward: 14336, Vocab: 32000, Context: 2048, RopeTheta: 500000f),
    };

    /// <summary>Creates the model of the named shape (see <see cref="Shapes"/>); see <see cref="Create(SyntheticShape, DataType, string, int, IProgress{ValueTuple{long, long}}?)"/>.</summary>
    public static void Create(string shape, DataType weightType, string path, int seed = 1,
        IProgress<(long done, long total)>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (!Shapes.TryGetValue(shape, out var s))
            throw new ArgumentException($"unknown synthetic shape '{shape}'; known: {string.Join(", ", Shapes.Keys)}", nameof(shape));
        Create(s, weightType, path, seed, progress);
    }

    /// <summary>
    /// Writes a GGUF v3 model of <paramref name="shape"/> to <paramref name="path"/>: 2-D weights in
    /// <paramref name="weightType"/> (F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q5_K or Q6_K; the K-quants need dim and ffn multiples
    /// of 256, so not the tiny shape), 1-D norm weights in F32 (all ones).
    /// Projections are uniform with std 1/√fan_in (output projections further scaled by 1/√(2·layers), as in
    /// GPT-2, so the residual stream stays O(1) through the layers); embeddings std 1/√D, which also keeps tied
    /// logits O(1). Rows are generated and quantized in parallel and streamed to disk. <paramref name="progress"/>
    /// gets (tensor bytes written, total).
    /// </summary>
    public static void Create(SyntheticShape shape, DataType weightType, string path, int seed = 1,
        IProgress<(long done, long total)>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentException.ThrowIfNullOrEmpty(path);
        uint fileType = WeightFormats.Get(weightType).LlamaFileType;
        Validate(shape, weightType);
        var vocab = LlamaVocabulary.Instance;
        if (shape.Vocab != vocab.Tokens.Length)
            throw new ArgumentException($"shape '{shape.Name}' has vocab {shape.Vocab}, but the embedded vocabulary has {vocab.Tokens.Length} tokens", nameof(shape));

        var w = new GgufWriter();
        w.Add("general.architecture", "llama");
        w.Add("general.name", $"synthetic-llama-{shape.Name}-{weightType.Name()}");
        w.Add("general.file_type", fileType);
        w.Add("general.quantization_version", 2u); // GGML_QNT_VERSION, as llama.cpp's tools write it
        w.Add("llama.context_length", (uint)shape.Context);
        w.Add("llama.embedding_length", (uint)shape.Dim);
        w.Add("llama.block_count", (uint)shape.Layers);
        w.Add("llama.feed_forward_length", (uint)shape.FeedForward);
        w.Add("llama.attention.head_count", (uint)shape.Heads);
        w.Add("llama.attention.head_count_kv", (uint)shape.KvHeads);
        w.Add("llama.rope.freq_base", shape.RopeTheta);
        w.Add("llama.attention.layer_norm_rms_epsilon", shape.RmsEpsilon);
        w.Add("llama.rope.dimension_count", (uint)shape.HeadDim);
        w.Add("llama.vocab_size", (uint)shape.Vocab);
        w.Add("tokenizer.ggml.model", vocab.Model);
        w.Add("tokenizer.ggml.tokens", vocab.Tokens);
        w.Add("tokenizer.ggml.scores", vocab.Scores);
        w.Add("tokenizer.ggml.token_type", vocab.TokenTypes);
        w.Add("tokenizer.ggml.bos_token_id", 1u);
        w.Add("tokenizer.ggml.eos_token_id", 2u);
        w.Add("tokenizer.ggml.unknown_token_id", 0u);
        w.Add("tokenizer.ggml.add_bos_token", true);
        w.Add("tokenizer.ggml.add_eos_token", false);

        int d = shape.Dim, f = shape.FeedForward, dkv = shape.KvDim;
        float projStd = 1f / MathF.Sqrt(d);
        float outScale = 1f / MathF.Sqrt(2f * shape.Layers);

        Random(w, seed, "token_embd.weight", weightType, d, shape.Vocab, 1f / MathF.Sqrt(d));   // {D, V}
        for (int l = 0; l < shape.Layers; l++)
        {
            string p = $"blk.{l}.";
            Ones(w, p + "attn_norm.weight", d);                                                  // {D}
            Random(w, seed, p + "attn_q.weight", weightType, d, d, projStd);                     // {D, D}
            Random(w, seed, p + "attn_k.weight", weightType, d, dkv, projStd);                   // {D, Dkv}
            Random(w, seed, p + "attn_v.weight", weightType, d, dkv, projStd);                   // {D, Dkv}
            Random(w, seed, p + "attn_output.weight", weightType, d, d, projStd * outScale);     // {D, D}
            Ones(w, p + "ffn_norm.weight", d);                                                   // {D}
            Random(w, seed, p + "ffn_gate.weight", weightType, d, f, projStd);                   // {D, F}
            Random(w, seed, p + "ffn_up.weight", weightType, d, f, projStd);                     // {D, F}
            Random(w, seed, p + "ffn_down.weight", weightType, f, d, outScale / MathF.Sqrt(f));  // {F, D}
        }
        Ones(w, "output_norm.weight", d);                                                        // {D}

        w.WriteTo(path, progress);
    }

    private static void Validate(SyntheticShape s, DataType type)
    {
        if (s.Dim <= 0 || s.Layers <= 0 || s.Heads <= 0 || s.KvHeads <= 0 || s.FeedForward <= 0 || s.Vocab <= 0 || s.Context <= 0)
            throw new ArgumentException($"shape '{s.Name}' has a non-positive dimension", nameof(s));
        if (s.Dim % s.Heads != 0 || s.Heads % s.KvHeads != 0)
            throw new ArgumentException($"shape '{s.Name}': heads {s.Heads} must divide dim {s.Dim} and kv heads {s.KvHeads} must divide heads", nameof(s));
        int bs = type.BlockSize();
        if (s.Dim % bs != 0 || s.FeedForward % bs != 0)
            throw new ArgumentException($"shape '{s.Name}': dim {s.Dim} and ffn {s.FeedForward} must be multiples of {bs} for {type.Name()}", nameof(s));
    }

    private static void Ones(GgufWriter w, string name, int n)
    {
        var ones = new float[n];
        Array.Fill(ones, 1f);
        w.AddTensor(name, DataType.F32, [n], ones);
    }

    /// <summary>Adds a {rowLength, rows} tensor of uniform values with standard deviation <paramref name="std"/>.</summary>
    private static void Random(GgufWriter w, int seed, string name, DataType type, int rowLength, int rows, float std)
    {
        ulong tensorSeed = SplitMix64.TensorSeed(seed, name);
        float limit = std * MathF.Sqrt(3f); // uniform(−a, a) has std a/√3
        long rowBytes = type.RowBytes(rowLength);
        w.AddTensor(name, type, [rowLength, rows], (firstRow, destination) =>
            FillRows(destination, firstRow, (int)(destination.Length / rowBytes), rowLength, (int)rowBytes, type, tensorSeed, limit));
    }

    private static unsafe void FillRows(Span<byte> destination, long firstRow, int rows, int rowLength, int rowBytes,
        DataType type, ulong tensorSeed, float limit)
    {
        fixed (byte* basePtr = destination)
        {
            nint dst = (nint)basePtr; // a Span cannot enter the lambda; the buffer stays pinned for the call
            Parallel.For(0, rows,
                () => ArrayPool<float>.Shared.Rent(rowLength),
                (r, _, scratch) =>
                {
                    var row = scratch.AsSpan(0, rowLength);
                    SplitMix64.ForRow(tensorSeed, firstRow + r).FillUniform(row, limit);
                    var target = new Span<byte>((byte*)dst + (long)r * rowBytes, rowBytes);
                    Quantizer.Quantize(type, row, target);
                    return scratch;
                },
                scratch => ArrayPool<float>.Shared.Return(scratch));
        }
    }
}
