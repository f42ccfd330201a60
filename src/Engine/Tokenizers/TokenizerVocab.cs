using Serving.Engine.Gguf;

namespace Serving.Engine.Tokenizers;

/// <summary>
/// The tokenizer part of a GGUF file as plain data: what <see cref="Tokenizer.Create"/> validates and builds a
/// tokenizer from. Optional members left null take the defaults llama.cpp uses for the model kind. Built by
/// <see cref="FromMetadata"/> or by hand (tests, synthetic models). Arrays are not copied: do not modify them
/// after handing them over.
/// </summary>
public sealed class TokenizerVocab
{
    /// <summary>GGUF metadata keys read by <see cref="FromMetadata"/>; also the keys named in errors.</summary>
    public static class Keys
    {
        /// <summary>"llama" (SentencePiece-style) or "gpt2" (byte-level BPE).</summary>
        public const string Model = "tokenizer.ggml.model";
        /// <summary>BPE pre-tokenizer name ("default", "gpt-2", "llama-bpe", …).</summary>
        public const string Pre = "tokenizer.ggml.pre";
        /// <summary>Token texts, index = id.</summary>
        public const string Tokens = "tokenizer.ggml.tokens";
        /// <summary>Per-token scores (SentencePiece merge priority), float32 (int32 accepted).</summary>
        public const string Scores = "tokenizer.ggml.scores";
        /// <summary>Per-token <see cref="TokenType"/> values, int32.</summary>
        public const string TokenTypes = "tokenizer.ggml.token_type";
        /// <summary>BPE merges "left right", highest priority first.</summary>
        public const string Merges = "tokenizer.ggml.merges";
        /// <summary>Beginning-of-sequence id.</summary>
        public const string BosId = "tokenizer.ggml.bos_token_id";
        /// <summary>End-of-sequence id.</summary>
        public const string EosId = "tokenizer.ggml.eos_token_id";
        /// <summary>Unknown-token id.</summary>
        public const string UnkId = "tokenizer.ggml.unknown_token_id";
        /// <summary>End-of-turn id.</summary>
        public const string EotId = "tokenizer.ggml.eot_token_id";
        /// <summary>End-of-message id.</summary>
        public const string EomId = "tokenizer.ggml.eom_token_id";
        /// <summary>Whether encoding for a model prompt starts with BOS.</summary>
        public const string AddBos = "tokenizer.ggml.add_bos_token";
        /// <summary>Whether SentencePiece input gets a leading space.</summary>
        public const string AddSpacePrefix = "tokenizer.ggml.add_space_prefix";
    }

    /// <summary>Tokenizer kind: "llama" or "gpt2".</summary>
    public required string Model { get; init; }

    /// <summary>BPE pre-tokenizer name; null = "default". Ignored for "llama".</summary>
    public string? Pre { get; init; }

    /// <summary>Token texts; the index is the id. Must be non-empty and free of duplicates.</summary>
    public required string[] Tokens { get; init; }

    /// <summary>Scores, one per token; null = all zero. Required in practice for "llama" (merge priority).</summary>
    public float[]? Scores { get; init; }

    /// <summary>Raw GGUF token types (see <see cref="TokenType"/>), one per token; null = all normal.</summary>
    public int[]? TokenTypes { get; init; }

    /// <summary>BPE merges "left right", rank = index. Required for "gpt2".</summary>
    public string[]? Merges { get; init; }

    /// <summary>BOS id; null = model default (1 for llama, none for gpt2).</summary>
    public int? BosId { get; init; }

    /// <summary>EOS id; null = model default (2 for llama, none for gpt2).</summary>
    public int? EosId { get; init; }

    /// <summary>Unknown-token id; null = model default (0 for llama, none for gpt2).</summary>
    public int? UnkId { get; init; }

    /// <summary>End-of-turn id; null = found by text ("&lt;|eot_id|&gt;", "&lt;|im_end|&gt;", …) when present.</summary>
    public int? EotId { get; init; }

    /// <summary>End-of-message id; null = found by text ("&lt;|eom_id|&gt;") when present.</summary>
    public int? EomId { get; init; }

    /// <summary>Add BOS when encoding a prompt; null = model default (llama: true; gpt2: true only for llama3-style pre).</summary>
    public bool? AddBos { get; init; }

    /// <summary>SentencePiece: prepend a space to the text; null = true.</summary>
    public bool? AddSpacePrefix { get; init; }

    /// <summary>
    /// Reads the tokenizer keys of <paramref name="metadata"/>. Throws <see cref="GgufFormatException"/> naming the
    /// key when one is missing or has the wrong type (e.g. scores that are strings). Semantic checks (lengths,
    /// id ranges) happen in <see cref="Tokenizer.Create"/>.
    /// </summary>
    public static TokenizerVocab FromMetadata(GgufMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        string model = metadata.GetString(Keys.Model);
        string[] tokens = metadata.GetStringArray(Keys.Tokens);

        return new TokenizerVocab
        {
            Model = model,
            Pre = metadata.TryGetString(Keys.Pre, out string pre) ? pre : null,
            Tokens = tokens,
            Scores = ReadScores(metadata),
            TokenTypes = metadata.Contains(Keys.TokenTypes) ? ReadTokenTypes(metadata) : null,
            Merges = metadata.Contains(Keys.Merges) ? metadata.GetStringArray(Keys.Merges) : null,
            BosId = ReadId(metadata, Keys.BosId, tokens.Length),
            EosId = ReadId(metadata, Keys.EosId, tokens.Length),
            UnkId = ReadId(metadata, Keys.UnkId, tokens.Length),
            EotId = ReadId(metadata, Keys.EotId, tokens.Length),
            EomId = ReadId(metadata, Keys.EomId, tokens.Length),
            AddBos = metadata.TryGetBool(Keys.AddBos, out bool addBos) ? addBos : null,
            AddSpacePrefix = metadata.TryGetBool(Keys.AddSpacePrefix, out bool prefix) ? prefix : null,
        };
    }

    private static float[]? ReadScores(GgufMetadata metadata)
    {
        if (!metadata.TryGetValue(Keys.Scores, out GgufValue v))
            return null;
        // llama.cpp accepts float32 and int32 scores; anything else means the writer put the wrong data here.
        return v.ElementType switch
        {
            _ when !v.IsArray => throw metadata.Error(Keys.Scores, $"expected an array of float32, found {v.Type}"),
            GgufValueType.Float32 or GgufValueType.Float64 => metadata.GetFloat32Array(Keys.Scores),
            GgufValueType.Int32 => Array.ConvertAll(metadata.GetInt32Array(Keys.Scores), x => (float)x),
            _ => throw metadata.Error(Keys.Scores, $"expected an array of float32, found an array of {v.ElementType}"),
        };
    }

    private static int[] ReadTokenTypes(GgufMetadata metadata)
    {
        GgufValue v = metadata[Keys.TokenTypes];
        if (!v.IsArray || v.ElementType is GgufValueType.String or GgufValueType.Float32 or GgufValueType.Float64 or GgufValueType.Bool)
            throw metadata.Error(Keys.TokenTypes, $"expected an array of int32, found {(v.IsArray ? "an array of " + v.ElementType : v.Type.ToString())}");
        return metadata.GetInt32Array(Keys.TokenTypes);
    }

    private static int? ReadId(GgufMetadata metadata, string key, int vocabSize) =>
        metadata.TryGetIndex(key, vocabSize, out int id) ? id : null;
}
