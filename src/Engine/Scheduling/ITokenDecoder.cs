namespace Serving.Engine.Scheduling;

/// <summary>
/// What the scheduler needs from a tokenizer to stream text and apply stop strings. Implementations must be
/// safe to call from the scheduler's loop thread while other threads use the tokenizer.
/// </summary>
public interface ITokenDecoder
{
    /// <summary>
    /// Text of <paramref name="tokens"/>. Where the tokens end inside a multi-byte UTF-8 character, the incomplete
    /// bytes must come out as U+FFFD (the scheduler then waits for the next token). Decoding a span must give
    /// the same text as decoding it in one piece after any tokens before it: the scheduler decodes a short window
    /// of preceding tokens along with the new ones and emits the difference.
    /// </summary>
    string Decode(ReadOnlySpan<int> tokens);

    /// <summary>True when <paramref name="token"/> ends generation (EOS, EOT, end-of-turn).</summary>
    bool IsEndOfGeneration(int token);
}
