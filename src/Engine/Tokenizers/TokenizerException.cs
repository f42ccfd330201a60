namespace Serving.Engine.Tokenizers;

/// <summary>
/// Tokenizer metadata is inconsistent or unsupported (mismatched array lengths, a special id outside the
/// vocabulary, an unknown model or pre-tokenizer), or text cannot be encoded with this vocabulary.
/// Type errors of GGUF values themselves surface as <see cref="Gguf.GgufFormatException"/>.
/// </summary>
public sealed class TokenizerException : Exception
{
    /// <summary>Creates the exception; the message becomes "&lt;key&gt;: &lt;detail&gt;" when a key is given.</summary>
    /// <param name="key">The GGUF metadata key at fault ("tokenizer.ggml.scores"), or null when none applies.</param>
    /// <param name="detail">What is wrong, with the numbers involved.</param>
    public TokenizerException(string? key, string detail)
        : base(key is null ? detail : $"{key}: {detail}")
    {
        Key = key;
        Detail = detail;
    }

    /// <summary>The GGUF metadata key at fault, or null.</summary>
    public string? Key { get; }

    /// <summary>What is wrong, without the key prefix.</summary>
    public string Detail { get; }
}
