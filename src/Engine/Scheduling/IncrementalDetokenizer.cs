namespace Serving.Engine.Scheduling;

/// <summary>
/// Turns a growing token sequence into text pieces, one call per new token, decoding only a short window.
/// Why a window: byte-level and SentencePiece decoders are not additive token by token (a character may span
/// tokens; SentencePiece drops a leading space at the start of a span), but decode(window + new) minus
/// decode(window) is exact once the window holds whole characters. Text ending in U+FFFD (an incomplete UTF-8
/// character) is held until the next token completes it.
/// </summary>
internal sealed class IncrementalDetokenizer
{
    /// <summary>Prompt tokens decoded as leading context for the first generated token.</summary>
    private const int PromptContext = 4;

    private readonly ITokenDecoder _decoder;
    private int _prefixOffset; // start of the context window
    private int _readOffset;   // tokens before this have been emitted as text

    public IncrementalDetokenizer(ITokenDecoder decoder, int promptLength)
    {
        _decoder = decoder;
        _readOffset = promptLength;
        _prefixOffset = Math.Max(0, promptLength - PromptContext);
    }

    /// <summary>Text added by the tokens after the last emitted one; empty while a character is incomplete.</summary>
    public string Next(ReadOnlySpan<int> allTokens)
    {
        string prefixText = _decoder.Decode(allTokens[_prefixOffset.._readOffset]);
        string fullText = _decoder.Decode(allTokens[_prefixOffset..]);
        if (fullText.Length <= prefixText.Length || fullText.EndsWith('\uFFFD')) return string.Empty;
        _prefixOffset = _readOffset;
        _readOffset = allTokens.Length;
        return fullText[prefixText.Length..];
    }

    /// <summary>At the end: whatever is still held (an incomplete character comes out as U+FFFD).</summary>
    public string Flush(ReadOnlySpan<int> allTokens)
    {
        if (_readOffset >= allTokens.Length) return string.Empty;
        string prefixText = _decoder.Decode(allTokens[_prefixOffset.._readOffset]);
        string fullText = _decoder.Decode(allTokens[_prefixOffset..]);
        _prefixOffset = _readOffset = allTokens.Length;
        return fullText.Length > prefixText.Length ? fullText[prefixText.Length..] : string.Empty;
    }
}
