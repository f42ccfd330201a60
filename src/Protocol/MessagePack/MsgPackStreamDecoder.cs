using System.Buffers;

namespace Serving.Protocol.MessagePack;

/// <summary>
/// Splits a byte stream (a socket) into whole MessagePack messages. Bytes are appended as they arrive; each
/// complete message comes out as its raw bytes or as a decoded <see cref="MsgValue"/>. A partially received
/// message is scanned incrementally (a slow stream costs O(bytes) in total) and never grows the buffer past
/// <see cref="MsgPackLimits.MaxMessageBytes"/>. Not thread-safe: one reader loop owns it.
/// </summary>
public sealed class MsgPackStreamDecoder : IDisposable
{
    private const int InitialBufferBytes = 4096;
    private const int KeepBufferBytes = 64 * 1024; // an idle connection keeps at most this much

    private readonly MsgPackLimits _limits;
    private MsgPackScanner _scanner;
    private byte[] _buffer;
    private int _start;  // first byte not yet returned as a message
    private int _end;    // one past the last byte appended

    /// <summary>Creates a decoder that applies <paramref name="limits"/> (default: <see cref="MsgPackLimits.Default"/>).</summary>
    public MsgPackStreamDecoder(MsgPackLimits? limits = null)
    {
        _limits = limits ?? MsgPackLimits.Default;
        _limits.Validate();
        _scanner = new MsgPackScanner(_limits);
        _buffer = [];
    }

    /// <summary>The limits in force.</summary>
    public MsgPackLimits Limits => _limits;

    /// <summary>Bytes appended but not yet returned as messages (a partial message, or messages not yet read).</summary>
    public int BufferedBytes => _end - _start;

    /// <summary>
    /// The buffered bytes not yet returned as messages (valid until the next <c>Append</c>); lets a caller read
    /// what it can of a message that failed, e.g. a request's msgid for an error reply.
    /// </summary>
    public ReadOnlySpan<byte> Buffered => _buffer.AsSpan(_start, _end - _start);

    /// <summary>How many more bytes <see cref="Append(ReadOnlySpan{byte})"/> accepts before messages are read out.</summary>
    public int SpaceLeft => _limits.MaxMessageBytes - BufferedBytes;

    /// <summary>
    /// Copies up to <see cref="SpaceLeft"/> bytes of <paramref name="data"/> into the buffer and returns how many
    /// were taken. Invalidates memory returned by an earlier <see cref="TryReadFrame"/>.
    /// </summary>
    public int Append(ReadOnlySpan<byte> data)
    {
        int take = Math.Min(data.Length, SpaceLeft);
        if (take <= 0)
        {
            return 0;
        }
        Reserve(take);
        data[..take].CopyTo(_buffer.AsSpan(_end));
        _end += take;
        return take;
    }

    /// <summary>Like <see cref="Append(ReadOnlySpan{byte})"/>, for a (possibly multi-segment) pipe buffer.</summary>
    public int Append(in ReadOnlySequence<byte> data)
    {
        int take = (int)Math.Min(data.Length, SpaceLeft);
        if (take <= 0)
        {
            return 0;
        }
        Reserve(take);
        data.Slice(0, take).CopyTo(_buffer.AsSpan(_end));
        _end += take;
        return take;
    }

    /// <summary>
    /// Takes the next complete message as raw bytes. The memory stays valid until the next <c>Append</c> or
    /// <see cref="Dispose"/>. Returns false when no complete message is buffered yet.
    /// </summary>
    /// <exception cref="MsgPackException">The buffered bytes are malformed or exceed a limit; the stream
    /// cannot be resynchronized and must be closed.</exception>
    public bool TryReadFrame(out ReadOnlyMemory<byte> message)
    {
        if (_end == _start || !_scanner.TryScan(_buffer.AsSpan(_start, _end - _start), out int length))
        {
            message = default;
            return false;
        }
        message = _buffer.AsMemory(_start, length);
        _start += length;
        return true;
    }

    /// <summary>Takes and decodes the next complete message; false when none is complete yet.</summary>
    /// <exception cref="MsgPackException">Malformed or over a limit (close the stream).</exception>
    public bool TryReadMessage(out MsgValue message)
    {
        if (!TryReadFrame(out var frame))
        {
            message = default;
            return false;
        }
        message = MsgPackDecoder.Decode(frame.Span, 0);
        return true;
    }

    /// <summary>Returns the buffer to the pool.</summary>
    public void Dispose()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }
        _buffer = [];
        _start = _end = 0;
        _scanner.Reset();
    }

    private void Reserve(int extra)
    {
        int buffered = _end - _start;
        if (buffered == 0)
        {
            _start = _end = 0;
            if (_buffer.Length > KeepBufferBytes)
            {
                // A big message has been handled: give its memory back instead of pinning it to the connection.
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = [];
            }
        }
        if (_end + extra <= _buffer.Length)
        {
            return;
        }
        int needed = buffered + extra; // ≤ MaxMessageBytes by the SpaceLeft rule
        if (needed <= _buffer.Length)
        {
            // Room exists once consumed bytes are dropped; the scanner's progress is relative to _start.
            _buffer.AsSpan(_start, buffered).CopyTo(_buffer);
        }
        else
        {
            int size = (int)Math.Min(_limits.MaxMessageBytes,
                Math.Max((long)needed, Math.Max(InitialBufferBytes, 2L * _buffer.Length)));
            byte[] bigger = ArrayPool<byte>.Shared.Rent(Math.Max(size, needed));
            _buffer.AsSpan(_start, buffered).CopyTo(bigger);
            if (_buffer.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
            }
            _buffer = bigger;
        }
        _start = 0;
        _end = buffered;
    }
}
