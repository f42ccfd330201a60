using Serving.Engine.Gguf;

namespace Serving.Engine.Synthetic;

/// <summary>
/// The llama SentencePiece vocabulary (32000 tokens) embedded in this assembly: llama.cpp's
/// models/ggml-vocab-llama-spm.gguf (MIT, see Resources/LICENSE-llama.cpp), read with <see cref="GgufFile"/>.
/// </summary>
internal sealed class LlamaVocabulary
{
    private const string ResourceName = "Serving.Engine.Resources.ggml-vocab-llama-spm.gguf";
    private static readonly Lazy<LlamaVocabulary> Shared = new(Load);

    private LlamaVocabulary(string model, string[] tokens, float[] scores, int[] tokenTypes)
    {
        Model = model;
        Tokens = tokens;
        Scores = scores;
        TokenTypes = tokenTypes;
    }

    /// <summary>tokenizer.ggml.model ("llama").</summary>
    public string Model { get; }

    /// <summary>Token strings, by id.</summary>
    public string[] Tokens { get; }

    /// <summary>SentencePiece scores, by id.</summary>
    public float[] Scores { get; }

    /// <summary>Token types (1 normal, 2 unknown, 3 control, 6 byte), by id.</summary>
    public int[] TokenTypes { get; }

    /// <summary>The vocabulary, read once per process.</summary>
    public static LlamaVocabulary Instance => Shared.Value;

    private static LlamaVocabulary Load()
    {
        using var stream = typeof(LlamaVocabulary).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"embedded resource {ResourceName} is missing from {typeof(LlamaVocabulary).Assembly.GetName().Name}");
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        using var file = GgufFile.Parse(bytes);
        var m = file.Metadata;
        var tokens = m.GetStringArray("tokenizer.ggml.tokens");
        var scores = m.GetFloat32Array("tokenizer.ggml.scores");
        var types = m.GetInt32Array("tokenizer.ggml.token_type");
        if (scores.Length != tokens.Length || types.Length != tokens.Length)
            throw new InvalidOperationException(
                $"embedded vocabulary is inconsistent: {tokens.Length} tokens, {scores.Length} scores, {types.Length} types");
        return new LlamaVocabulary(m.GetString("tokenizer.ggml.model"), tokens, scores, types);
    }
}
