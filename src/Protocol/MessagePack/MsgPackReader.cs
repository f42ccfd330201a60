using System.Text;
using System.Text.Unicode;

namespace Serving.Protocol.MessagePack;

/// <summary>
/// Reads whole MessagePack values from a span of bytes under <see cref="MsgPackLimits"/>. Each value is first
/// scanned (structure, limits, depth; nothing allocated), then decoded without recursion; so a declared size the
/// bytes cannot back, or nesting past the limit, fails before any allocation. For a socket stream prefer
/// <see cref="MsgPackStreamDecoder"/>, which resumes partial scans instead of restarting them.
/// </summary>
public ref struct MsgPackReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private readonly MsgPackLimits _limits;
    private int _position;

    /// <summary>Creates a reader over <paramref name="buffer"/> (not copied; decoded values own their data).</summary>
    /// <param name="limits">Limits applied to each value read; <see cref="MsgPackLimits.Default"/> when null.</param>
    public MsgPackReader(ReadOnlySpan<byte> buffer, MsgPackLimits? limits = null)
    {
        _buffer = buffer;
        _limits = limits ?? MsgPackLimits.Default;
        _position = 0;
    }

    /// <summary>Bytes consumed by the values read so far.</summary>
    public readonly int Consumed => _position;

    /// <summary>Bytes not yet consumed.</summary>
    public readonly int Remaining => _buffer.Length - _position;

    /// <summary>
    /// Reads the next value. Returns false, consuming nothing, when the buffer ends before the value does (or is
    /// empty) — "need more data" for streaming callers.
    /// </summary>
    /// <exception cref="MsgPackException">Malformed input, a limit exceeded, or nesting too deep.</exception>
    public bool TryRead(out MsgValue value)
    {
        var rest = _buffer[_position..];
        var scanner = new MsgPackScanner(_limits);
        if (!scanner.TryScan(rest, out int length))
        {
            value = default;
            return false;
        }
        value = MsgPackDecoder.Decode(rest[..length], _position);
        _position += length;
        return true;
    }

    /// <summary>Reads the next value; the buffer must hold all of it.</summary>
    /// <exception cref="MsgPackException">Truncated (the buffer ends inside the value), malformed, or over a limit.</exception>
    public MsgValue Read()
    {
        if (!TryRead(out var value))
        {
            throw new MsgPackException(MsgPackErrorCode.Truncated, _position, "Input ended inside a MessagePack value");
        }
        return value;
    }

    /// <summary>
    /// Skips the next value with the same validation as <see cref="TryRead"/> but without allocating. Returns
    /// false, consuming nothing, when the buffer ends before the value does.
    /// </summary>
    /// <exception cref="MsgPackException">Malformed input, a limit exceeded, or nesting too deep.</exception>
    public bool TrySkip()
    {
        var scanner = new MsgPackScanner(_limits);
        if (!scanner.TryScan(_buffer[_position..], out int length))
        {
            return false;
        }
        _position += length;
        return true;
    }
}

/// <summary>Builds <see cref="MsgValue"/> trees from a message already validated by <see cref="MsgPackScanner"/>.</summary>
internal static class MsgPackDecoder
{
    private struct Frame
    {
        public MsgValue[]? Items;                             // array being filled, or
        public KeyValuePair<MsgValue, MsgValue>[]? Pairs;     // map being filled
        public int Index;                                     // next slot (array item, or map pair)
        public MsgValue Key;                                  // map: key waiting for its value
        public bool HasKey;
    }

    /// <summary>Decodes the single value that fills <paramref name="message"/> exactly.</summary>
    /// <param name="baseOffset">Offset of the message in its stream, for error messages.</param>
    public static MsgValue Decode(ReadOnlySpan<byte> message, long baseOffset)
    {
        Frame[] stack = [];
        int depth = 0;
        int pos = 0;
        while (true)
        {
            if (!MsgPackToken.TryParse(message[pos..], baseOffset + pos, out var t))
            {
                // Unreachable after a successful scan; kept so a logic error cannot read past the message.
                throw new MsgPackException(MsgPackErrorCode.Truncated, baseOffset + pos, "Input ended inside a value");
            }
            int at = pos;
            pos += t.HeaderLength;
            MsgValue value;
            switch (t.Kind)
            {
                case TokenKind.Nil: value = default; break;
                case TokenKind.Bool: value = MsgValue.FromBool(t.Bits != 0); break;
                case TokenKind.Int: value = MsgValue.FromInt64(unchecked((long)t.Bits)); break;
                case TokenKind.UInt: value = MsgValue.FromUInt64(t.Bits); break;
                case TokenKind.Float32: value = MsgValue.FromFloat32(BitConverter.UInt32BitsToSingle((uint)t.Bits)); break;
                case TokenKind.Float64: value = MsgValue.FromFloat64(BitConverter.UInt64BitsToDouble(t.Bits)); break;
                case TokenKind.Str:
                {
                    var bytes = message.Slice(pos, (int)t.Length);
                    if (!Utf8.IsValid(bytes))
                    {
                        throw new MsgPackException(MsgPackErrorCode.Malformed, baseOffset + at, "String is not valid UTF-8");
                    }
                    value = MsgValue.FromString(Encoding.UTF8.GetString(bytes));
                    pos += (int)t.Length;
                    break;
                }
                case TokenKind.Bin:
                    value = MsgValue.FromBinary(message.Slice(pos, (int)t.Length).ToArray());
                    pos += (int)t.Length;
                    break;
                case TokenKind.Ext:
                {
                    var data = message.Slice(pos, (int)t.Length);
                    if (t.ExtType == -1)
                    {
                        var (seconds, nanoseconds) = MsgPackToken.ReadTimestamp(data, baseOffset + at);
                        value = MsgValue.FromTimestamp(seconds, nanoseconds);
                    }
                    else
                    {
                        value = MsgValue.FromExt(t.ExtType, data.ToArray());
                    }
                    pos += (int)t.Length;
                    break;
                }
                case TokenKind.Array when t.Length == 0:
                    value = MsgValue.EmptyArray;
                    break;
                case TokenKind.Map when t.Length == 0:
                    value = MsgValue.EmptyMap;
                    break;
                default:
                    // Non-empty container: open a frame and fill it with the following tokens.
                    if (depth == stack.Length)
                    {
                        Array.Resize(ref stack, Math.Max(8, depth * 2));
                    }
                    stack[depth++] = t.Kind == TokenKind.Array
                        ? new Frame { Items = new MsgValue[t.Length] }
                        : new Frame { Pairs = new KeyValuePair<MsgValue, MsgValue>[t.Length] };
                    continue;
            }

            // Hand the finished value to its parent; a parent that becomes full is itself finished.
            while (true)
            {
                if (depth == 0)
                {
                    return value;
                }
                ref var f = ref stack[depth - 1];
                if (f.Items is not null)
                {
                    f.Items[f.Index++] = value;
                    if (f.Index < f.Items.Length)
                    {
                        break;
                    }
                    value = MsgValue.FromArray(f.Items);
                }
                else
                {
                    if (!f.HasKey)
                    {
                        f.Key = value;
                        f.HasKey = true;
                        break;
                    }
                    f.Pairs![f.Index++] = new(f.Key, value);
                    f.HasKey = false;
                    f.Key = default;
                    if (f.Index < f.Pairs.Length)
                    {
                        break;
                    }
                    value = MsgValue.FromMap(f.Pairs);
                }
                f = default;
                depth--;
            }
        }
    }
}
