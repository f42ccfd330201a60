namespace Serving.Engine.Tokenizers;

/// <summary>
/// Kind of a vocabulary entry; values equal GGUF's <c>tokenizer.ggml.token_type</c> (llama_token_type).
/// </summary>
public enum TokenType
{
    /// <summary>Not set (0) or an unknown number; treated as unused: it decodes to nothing.</summary>
    Undefined = 0,
    /// <summary>Ordinary text piece.</summary>
    Normal = 1,
    /// <summary>The unknown-token marker (&lt;unk&gt;).</summary>
    Unknown = 2,
    /// <summary>Control token (&lt;s&gt;, &lt;|eot_id|&gt;): never produced from plain text, hidden when decoding unless asked.</summary>
    Control = 3,
    /// <summary>Added token matched verbatim in input text before pre-tokenization, decoded verbatim.</summary>
    UserDefined = 4,
    /// <summary>Reserved slot; decodes to nothing.</summary>
    Unused = 5,
    /// <summary>Byte-fallback token &lt;0xXX&gt; standing for one raw byte.</summary>
    Byte = 6,
}
