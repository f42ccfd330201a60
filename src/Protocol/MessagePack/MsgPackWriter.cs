using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Serving.Protocol.MessagePack;

/// <summary>
/// Writes MessagePack to an <see cref="IBufferWriter{T}"/> using the smallest encoding of every value (fixint,
/// fixstr, fixarray, fixmap, fixext where they fit; the shortest timestamp form). Holds no state of its own, so
/// copies share the same output.
/// </summary>
public readonly struct MsgPackWriter
{
    private readonly IBufferWriter<byte> _output;

    /// <summary>Creates a writer appending to <paramref name="output"/> (not owned).</summary>
    public MsgPackWriter(IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        _output = output;
    }

    /// <summary>Writes nil (0xc0).</summary>
    public void WriteNil() => WriteByte(0xc0);

    /// <summary>Writes true (0xc3) or false (0xc2).</summary>
    public void WriteBool(bool value) => WriteByte(value ? (byte)0xc3 : (byte)0xc2);

    /// <summary>Writes a signed integer in its smallest form (non-negative values use the unsigned forms).</summary>
    public void WriteInt64(long value)
    {
        if (value >= 0)
        {
            WriteUInt64((ulong)value);
            return;
        }
        if (value >= -32)
        {
            WriteByte(unchecked((byte)(sbyte)value));
        }
        else if (value >= sbyte.MinValue)
        {
            var s = _output.GetSpan(2);
            s[0] = 0xd0;
            s[1] = unchecked((byte)(sbyte)value);
            _output.Advance(2);
        }
        else if (value >= short.MinValue)
        {
            var s = _output.GetSpan(3);
            s[0] = 0xd1;
            BinaryPrimitives.WriteInt16BigEndian(s[1..], (short)value);
            _output.Advance(3);
        }
        else if (value >= int.MinValue)
        {
            var s = _output.GetSpan(5);
            s[0] = 0xd2;
            BinaryPrimitives.WriteInt32BigEndian(s[1..], (int)value);
            _output.Advance(5);
        }
        else
        {
            var s = _output.GetSpan(9);
            s[0] = 0xd3;
            BinaryPrimitives.WriteInt64BigEndian(s[1..], value);
            _output.Advance(9);
        }
    }

    /// <summary>Writes an unsigned integer in its smallest form.</summary>
    public void WriteUInt64(ulong value)
    {
        if (value <= 0x7f)
        {
            WriteByte((byte)value);
        }
        else if (value <= byte.MaxValue)
        {
            var s = _output.GetSpan(2);
            s[0] = 0xcc;
            s[1] = (byte)value;
            _output.Advance(2);
        }
        else if (value <= ushort.MaxValue)
        {
            WriteMarkerUInt16(0xcd, (ushort)value);
        }
        else if (value <= uint.MaxValue)
        {
            WriteMarkerUInt32(0xce, (uint)value);
        }
        else
        {
            var s = _output.GetSpan(9);
            s[0] = 0xcf;
            BinaryPrimitives.WriteUInt64BigEndian(s[1..], value);
            _output.Advance(9);
        }
    }

    /// <summary>Writes a float 32 (0xca).</summary>
    public void WriteFloat32(float value) => WriteMarkerUInt32(0xca, BitConverter.SingleToUInt32Bits(value));

    /// <summary>Writes a float 64 (0xcb).</summary>
    public void WriteFloat64(double value)
    {
        var s = _output.GetSpan(9);
        s[0] = 0xcb;
        BinaryPrimitives.WriteUInt64BigEndian(s[1..], BitConverter.DoubleToUInt64Bits(value));
        _output.Advance(9);
    }

    /// <summary>Writes a string as UTF-8 str (lone surrogates become U+FFFD).</summary>
    public void WriteString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        int byteCount = Encoding.UTF8.GetByteCount(value);
        WriteStringHeader(byteCount);
        var s = _output.GetSpan(byteCount);
        _output.Advance(Encoding.UTF8.GetBytes(value, s));
    }

    /// <summary>Writes already-encoded UTF-8 bytes as str (not validated: the caller vouches for them).</summary>
    public void WriteStringUtf8(ReadOnlySpan<byte> utf8)
    {
        WriteStringHeader(utf8.Length);
        WriteRaw(utf8);
    }

    /// <summary>Writes the header of a str of <paramref name="byteCount"/> UTF-8 bytes.</summary>
    public void WriteStringHeader(int byteCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(byteCount);
        if (byteCount <= 31)
        {
            WriteByte((byte)(0xa0 | byteCount));
        }
        else if (byteCount <= byte.MaxValue)
        {
            var s = _output.GetSpan(2);
            s[0] = 0xd9;
            s[1] = (byte)byteCount;
            _output.Advance(2);
        }
        else if (byteCount <= ushort.MaxValue)
        {
            WriteMarkerUInt16(0xda, (ushort)byteCount);
        }
        else
        {
            WriteMarkerUInt32(0xdb, (uint)byteCount);
        }
    }

    /// <summary>Writes binary data (bin 8/16/32).</summary>
    public void WriteBinary(ReadOnlySpan<byte> data)
    {
        if (data.Length <= byte.MaxValue)
        {
            var s = _output.GetSpan(2);
            s[0] = 0xc4;
            s[1] = (byte)data.Length;
            _output.Advance(2);
        }
        else if (data.Length <= ushort.MaxValue)
        {
            WriteMarkerUInt16(0xc5, (ushort)data.Length);
        }
        else
        {
            WriteMarkerUInt32(0xc6, (uint)data.Length);
        }
        WriteRaw(data);
    }

    /// <summary>Writes an array header; exactly <paramref name="count"/> values must follow.</summary>
    public void WriteArrayHeader(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count <= 15)
        {
            WriteByte((byte)(0x90 | count));
        }
        else if (count <= ushort.MaxValue)
        {
            WriteMarkerUInt16(0xdc, (ushort)count);
        }
        else
        {
            WriteMarkerUInt32(0xdd, (uint)count);
        }
    }

    /// <summary>Writes a map header; exactly <paramref name="count"/> key/value pairs must follow.</summary>
    public void WriteMapHeader(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count <= 15)
        {
            WriteByte((byte)(0x80 | count));
        }
        else if (count <= ushort.MaxValue)
        {
            WriteMarkerUInt16(0xde, (ushort)count);
        }
        else
        {
            WriteMarkerUInt32(0xdf, (uint)count);
        }
    }

    /// <summary>Writes an extension value (fixext 1/2/4/8/16 when the length fits, else ext 8/16/32).</summary>
    public void WriteExt(sbyte type, ReadOnlySpan<byte> data)
    {
        byte fix = data.Length switch { 1 => 0xd4, 2 => 0xd5, 4 => 0xd6, 8 => 0xd7, 16 => 0xd8, _ => 0 };
        if (fix != 0)
        {
            var s = _output.GetSpan(2);
            s[0] = fix;
            s[1] = unchecked((byte)type);
            _output.Advance(2);
        }
        else if (data.Length <= byte.MaxValue)
        {
            var s = _output.GetSpan(3);
            s[0] = 0xc7;
            s[1] = (byte)data.Length;
            s[2] = unchecked((byte)type);
            _output.Advance(3);
        }
        else if (data.Length <= ushort.MaxValue)
        {
            var s = _output.GetSpan(4);
            s[0] = 0xc8;
            BinaryPrimitives.WriteUInt16BigEndian(s[1..], (ushort)data.Length);
            s[3] = unchecked((byte)type);
            _output.Advance(4);
        }
        else
        {
            var s = _output.GetSpan(6);
            s[0] = 0xc9;
            BinaryPrimitives.WriteUInt32BigEndian(s[1..], (uint)data.Length);
            s[5] = unchecked((byte)type);
            _output.Advance(6);
        }
        WriteRaw(data);
    }

    /// <summary>
    /// Writes a timestamp (ext −1): 32-bit form when nanoseconds are 0 and seconds fit in uint32, 64-bit form when
    /// seconds fit in 34 bits, else the 96-bit form.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nanoseconds"/> ≥ 1e9.</exception>
    public void WriteTimestamp(long seconds, uint nanoseconds)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(nanoseconds, 1_000_000_000u);
        if ((ulong)seconds >> 34 == 0)
        {
            if (nanoseconds == 0 && (ulong)seconds <= uint.MaxValue)
            {
                var s = _output.GetSpan(6);
                s[0] = 0xd6;
                s[1] = 0xff;
                BinaryPrimitives.WriteUInt32BigEndian(s[2..], (uint)seconds);
                _output.Advance(6);
            }
            else
            {
                var s = _output.GetSpan(10);
                s[0] = 0xd7;
                s[1] = 0xff;
                BinaryPrimitives.WriteUInt64BigEndian(s[2..], ((ulong)nanoseconds << 34) | (ulong)seconds);
                _output.Advance(10);
            }
        }
        else
        {
            var s = _output.GetSpan(15);
            s[0] = 0xc7;
            s[1] = 12;
            s[2] = 0xff;
            BinaryPrimitives.WriteUInt32BigEndian(s[3..], nanoseconds);
            BinaryPrimitives.WriteInt64BigEndian(s[7..], seconds);
            _output.Advance(15);
        }
    }

    /// <summary>
    /// Writes a whole value tree. Iterative (an explicit stack), so even very deep trees built in code cannot
    /// overflow the call stack.
    /// </summary>
    public void Write(MsgValue value)
    {
        var stack = new Stack<(MsgValue Container, int Next)>();
        while (true)
        {
            if (!WriteOpen(value))
            {
                // A scalar (or empty container) is done: climb until a container still has items to write.
                while (true)
                {
                    if (stack.Count == 0)
                    {
                        return;
                    }
                    var (container, next) = stack.Pop();
                    int total = container.Kind == MsgValueKind.Array ? container.Count : 2 * container.Count;
                    if (next < total)
                    {
                        stack.Push((container, next + 1));
                        value = ItemAt(container, next);
                        break;
                    }
                }
                continue;
            }
            stack.Push((value, 1));
            value = ItemAt(value, 0);
        }
    }

    private static MsgValue ItemAt(MsgValue container, int index) =>
        container.Kind == MsgValueKind.Array
            ? container.AsArray()[index]
            : (index & 1) == 0 ? container.AsMap()[index >> 1].Key : container.AsMap()[index >> 1].Value;

    // Writes a scalar entirely, or the header of a container. Returns true only for a non-empty container,
    // whose items the caller must write next.
    private bool WriteOpen(MsgValue value)
    {
        switch (value.Kind)
        {
            case MsgValueKind.Nil: WriteNil(); break;
            case MsgValueKind.Bool: WriteBool(value.AsBool()); break;
            case MsgValueKind.Int: WriteInt64(value.AsInt64()); break;
            case MsgValueKind.UInt: value.TryGetUInt64(out ulong u); WriteUInt64(u); break;
            case MsgValueKind.Float32: WriteFloat32(value.AsFloat32()); break;
            case MsgValueKind.Float64: WriteFloat64(value.AsFloat64()); break;
            case MsgValueKind.Str: WriteString(value.AsString()); break;
            case MsgValueKind.Bin: WriteBinary(value.AsBinary().Span); break;
            case MsgValueKind.Ext: WriteExt(value.ExtType, value.AsBinary().Span); break;
            case MsgValueKind.Timestamp:
                var (seconds, nanoseconds) = value.AsTimestamp();
                WriteTimestamp(seconds, nanoseconds);
                break;
            case MsgValueKind.Array:
                WriteArrayHeader(value.Count);
                return value.Count > 0;
            case MsgValueKind.Map:
                WriteMapHeader(value.Count);
                return value.Count > 0;
        }
        return false;
    }

    /// <summary>Copies raw bytes to the output (for pre-encoded MessagePack; no framing added).</summary>
    public void WriteRaw(ReadOnlySpan<byte> bytes)
    {
        // GetSpan may return less than asked only when asked for more than the writer can give at once; copy in chunks.
        while (!bytes.IsEmpty)
        {
            var s = _output.GetSpan(Math.Min(bytes.Length, 1 << 16));
            int n = Math.Min(s.Length, bytes.Length);
            bytes[..n].CopyTo(s);
            _output.Advance(n);
            bytes = bytes[n..];
        }
    }

    private void WriteByte(byte b)
    {
        _output.GetSpan(1)[0] = b;
        _output.Advance(1);
    }

    private void WriteMarkerUInt16(byte marker, ushort value)
    {
        var s = _output.GetSpan(3);
        s[0] = marker;
        BinaryPrimitives.WriteUInt16BigEndian(s[1..], value);
        _output.Advance(3);
    }

    private void WriteMarkerUInt32(byte marker, uint value)
    {
        var s = _output.GetSpan(5);
        s[0] = marker;
        BinaryPrimitives.WriteUInt32BigEndian(s[1..], value);
        _output.Advance(5);
    }
}
