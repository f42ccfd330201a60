using Serving.Abstractions;
using Serving.Engine.Gguf;

namespace Serving.Engine.Models;

/// <summary>
/// Hyper-parameters of a Llama-family decoder (llama, mistral, qwen2), read from GGUF metadata with the
/// architecture prefix (<c>llama.embedding_length</c>, <c>qwen2.block_count</c>, …).
/// Legend: D = model dim, H/Hkv = query/kv heads, Dh = head dim, F = FFN dim, V = vocab.
/// </summary>
public sealed record LlamaConfig
{
    /// <summary>Architectures this model class runs.</summary>
    public static readonly string[] SupportedArchitectures = ["llama", "mistral", "qwen2"];

    /// <summary>general.architecture.</summary>
    public required string Architecture { get; init; }
    /// <summary>D.</summary>
    public required int Dim { get; init; }
    /// <summary>Transformer blocks.</summary>
    public required int Layers { get; init; }
    /// <summary>H.</summary>
    public required int Heads { get; init; }
    /// <summary>Hkv (GQA when smaller than H).</summary>
    public required int KvHeads { get; init; }
    /// <summary>Dh.</summary>
    public required int HeadDim { get; init; }
    /// <summary>F.</summary>
    public required int FfnDim { get; init; }
    /// <summary>V, from the embedding table.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Training context length.</summary>
    public required int ContextLength { get; init; }
    /// <summary>RMSNorm epsilon.</summary>
    public required float RmsEps { get; init; }
    /// <summary>RoPE base frequency (theta).</summary>
    public required float RopeTheta { get; init; }
    /// <summary>Leading elements of each head that rotate.</summary>
    public required int RopeDim { get; init; }
    /// <summary>Pairing style: llama/mistral adjacent, qwen2 NeoX.</summary>
    public required RopeStyle RopeStyle { get; init; }
    /// <summary>Linear RoPE scaling: positions are multiplied by this (1 = none).</summary>
    public float RopeFrequencyScale { get; init; } = 1f;

    /// <summary>Reads and checks the hyper-parameters. Throws <see cref="ModelLoadException"/> naming the key.</summary>
    public static LlamaConfig FromGguf(GgufFile file)
    {
        var md = file.Metadata;
        if (!md.TryGetString("general.architecture", out string arch))
            throw new ModelLoadException("general.architecture", "missing; not a model file (a vocabulary-only GGUF?)");
        if (!SupportedArchitectures.Contains(arch, StringComparer.Ordinal))
            throw new ModelLoadException("general.architecture",
                $"'{arch}' is not supported; supported: {string.Join(", ", SupportedArchitectures)}");

        int Required(string key)
        {
            string full = $"{arch}.{key}";
            if (!md.TryGetUInt32(full, out uint v))
                throw new ModelLoadException(full, "missing required hyper-parameter");
            if (v == 0 || v > 1_000_000)
                throw new ModelLoadException(full, $"value {v} out of range");
            return (int)v;
        }

        int dim = Required("embedding_length");
        int layers = Required("block_count");
        int heads = Required("attention.head_count");
        int ffn = Required("feed_forward_length");
        int ctx = Required("context_length");
        int kvHeads = md.TryGetUInt32($"{arch}.attention.head_count_kv", out uint hkv) ? (int)hkv : heads;
        if (kvHeads <= 0 || heads % kvHeads != 0)
            throw new ModelLoadException($"{arch}.attention.head_count_kv", $"{kvHeads} does not divide head_count {heads}");
        int headDim = md.TryGetUInt32($"{arch}.attention.key_length", out uint kl) ? (int)kl : dim / heads;
        if (headDim <= 0 || headDim > 1024 || headDim % 2 != 0 || (!md.Contains($"{arch}.attention.key_length") && dim % heads != 0))
            throw new ModelLoadException($"{arch}.attention.key_length", $"head dim {headDim} (dim {dim} / heads {heads}) must be an even number in [2, 1024]");
        if ((long)heads * headDim > 1_000_000)
            throw new ModelLoadException($"{arch}.attention.head_count", $"{heads} heads × head dim {headDim} is too large");
        float eps = md.TryGetFloat32($"{arch}.attention.layer_norm_rms_epsilon", out float e) ? e : 1e-5f;
        if (!(eps > 0 && eps < 1))
            throw new ModelLoadException($"{arch}.attention.layer_norm_rms_epsilon", $"{eps} out of range (0, 1)");
        float theta = md.TryGetFloat32($"{arch}.rope.freq_base", out float t) ? t : 10000f;
        if (!(theta > 1 && float.IsFinite(theta)))
            throw new ModelLoadException($"{arch}.rope.freq_base", $"{theta} out of range");
        int ropeDim = md.TryGetUInt32($"{arch}.rope.dimension_count", out uint rd) ? (int)rd : headDim;
        if (ropeDim <= 0 || ropeDim > headDim || ropeDim % 2 != 0)
            throw new ModelLoadException($"{arch}.rope.dimension_count", $"{ropeDim} must be even and ≤ head dim {headDim}");

        float freqScale = 1f;
        if (md.TryGetString($"{arch}.rope.scaling.type", out string scaling) && scaling is not ("none" or ""))
        {
            if (scaling != "linear")
                throw new ModelLoadException($"{arch}.rope.scaling.type", $"'{scaling}' RoPE scaling is not supported (supported: none, linear; llama3 uses rope_freqs.weight)");
            if (!md.TryGetFloat32($"{arch}.rope.scaling.factor", out float factor) || !(factor >= 1))
                throw new ModelLoadException($"{arch}.rope.scaling.factor", "linear scaling needs a factor ≥ 1");
            freqScale = 1f / factor;
        }
        else if (md.TryGetFloat32($"{arch}.rope.scale_linear", out float legacy) && legacy != 1f)
        {
            // Older converters wrote linear scaling as one key; llama.cpp still honours it.
            if (!(legacy >= 1 && float.IsFinite(legacy)))
                throw new ModelLoadException($"{arch}.rope.scale_linear", $"{legacy} must be ≥ 1");
            freqScale = 1f / legacy;
        }

        var embd = file.FindTensor("token_embd.weight")
                   ?? throw new ModelLoadException("token_embd.weight", "missing required tensor");
        if (embd.Dims.Length != 2 || embd.Dims[0] != dim)
            throw new ModelLoadException("token_embd.weight", $"shape [{string.Join(", ", embd.Dims)}] does not match embedding_length {dim}");
        if (embd.Dims[1] is <= 0 or > int.MaxValue)
            throw new ModelLoadException("token_embd.weight", $"vocab {embd.Dims[1]} out of range");

        return new LlamaConfig
        {
            Architecture = arch,
            Dim = dim,
            Layers = layers,
            Heads = heads,
            KvHeads = kvHeads,
            HeadDim = headDim,
            FfnDim = ffn,
            VocabSize = (int)embd.Dims[1],
            ContextLength = ctx,
            RmsEps = eps,
            RopeTheta = theta,
            RopeDim = ropeDim,
            RopeStyle = arch == "qwen2" ? RopeStyle.NeoX : RopeStyle.Normal,
            RopeFrequencyScale = freqScale,
        };
    }

    /// <summary>
    /// Inverse frequencies for RoPE: theta^(−2i/RopeDim) · frequency scale, divided by per-pair factors when the
    /// file has <c>rope_freqs.weight</c> (llama 3.1+ long-context scaling, precomputed by the converter).
    /// </summary>
    public float[] InverseFrequencies(ReadOnlySpan<float> freqFactors)
    {
        int half = RopeDim / 2;
        if (!freqFactors.IsEmpty && freqFactors.Length != half)
            throw new ModelLoadException("rope_freqs.weight", $"has {freqFactors.Length} factors, expected {half}");
        var inv = new float[half];
        for (int i = 0; i < half; i++)
        {
            double f = Math.Pow(RopeTheta, -2.0 * i / RopeDim) * RopeFrequencyScale;
            if (!freqFactors.IsEmpty) f /= freqFactors[i];
            inv[i] = (float)f;
        }
        return inv;
    }

    /// <summary>Bytes of KV cache per token (K and V, all layers) stored as <paramref name="cacheType"/> (f16 or f32).</summary>
    public long KvBytesPerToken(DataType cacheType) => 2L * Layers * cacheType.RowBytes((long)KvHeads * HeadDim);
}
