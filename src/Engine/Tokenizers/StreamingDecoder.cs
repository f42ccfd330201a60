using System.Buffers;
using System.Text;

namespace Serving.Engine.Tokenizers;

/// <summary>
/// Turns generated tokens, one at a time, into text that is safe to send: only complete UTF-8 characters come
/// out, so a character spread over byte tokens (e.g. &lt;0xE2&gt;&lt;0x96&gt;&lt;0x81&gt;) appears whole once its last byte
/// arrives. Pieces are joined exactly as generated (no leading-space strip, no space cleaning), as llama.cpp's
/// server streams them. Bytes that can never form a character come out as U+FFFD. One instance per stream;
/// not thread-safe.
/// </summary>
public sealed class StreamingDecoder
{
    private readonly Tokenizer _tokenizer;
    private readonly bool _renderSpecial;
    private byte[] _pending = new byte[16]; // bytes of an incomplete character at the end of the stream so far
    private int _pendingLength;

    /// <summary>Creates a decoder for <paramref name="tokenizer"/>; control tokens are left out unless <paramref name="renderSpecial"/>.</summary>
    public StreamingDecoder(Tokenizer tokenizer, bool renderSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
        _renderSpecial = renderSpecial;
    }

    /// <summary>Bytes held back because they end in an incomplete UTF-8 character (0..3).</summary>
    public int PendingByteCount => _pendingLength;

    /// <summary>
    /// Adds token <paramref name="id"/> and returns the text it completes: possibly empty (the token ended
    /// mid-character or renders as nothing), possibly including characters begun by earlier tokens.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is outside the vocabulary.</exception>
    public string Push(int id)
    {
        ReadOnlySpan<byte> piece = _tokenizer.TokenToBytes(id, _renderSpecial);
        if (piece.IsEmpty)
            return "";
        int total = _pendingLength + piece.Length;
        if (total > _pending.Length)
            Array.Resize(ref _pending, Math.Max(total, _pending.Length * 2));
        piece.CopyTo(_pending.AsSpan(_pendingLength));
        _pendingLength = total;
        return Drain(final: false);
    }

    /// <summary>Ends the stream: returns any held-back bytes as U+FFFD (they never completed) and resets.</summary>
    public string Flush() => Drain(final: true);

    /// <summary>Forgets held-back bytes, for reuse on a new stream.</summary>
    public void Reset() => _pendingLength = 0;

    private string Drain(bool final)
    {
        ReadOnlySpan<byte> bytes = _pending.AsSpan(0, _pendingLength);
        var sb = new StringBuilder(bytes.Length);
        int at = 0;
        while (at < bytes.Length)
        {
            OperationStatus status = Rune.DecodeFromUtf8(bytes[at..], out Rune rune, out int used);
            if (status == OperationStatus.NeedMoreData && !final)
                break; // a valid start of a character whose remaining bytes have not arrived yet
            // Done: a character. InvalidData / final NeedMoreData: `rune` is U+FFFD covering the bad bytes.
            sb.Append(rune.ToString());
            at += used;
        }
        int rest = bytes.Length - at;
        bytes[at..].CopyTo(_pending);
        _pendingLength = rest;
        return sb.ToString();
    }
}
