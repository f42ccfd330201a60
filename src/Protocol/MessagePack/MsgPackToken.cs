using System.Buffers.Binary;

namespace Serving.Protocol.MessagePack;

/// <summary>What kind of token a header byte starts.</summary>
internal enum TokenKind : byte
{
    Nil, Bool, Int, UInt, Float32, Float64, Str, Bin, Array, Map, Ext,
}

/// <summary>
/// One decoded token header. For scalars <see cref="HeaderLength"/> is the whole token; for str/bin/ext
/// <see cref="Length"/> payload bytes follow the header; for array/map <see cref="Length"/> is the item/pair count.
/// </summary>
internal readonly struct MsgPackToken
{
    public readonly TokenKind Kind;
    public readonly sbyte ExtType;
    public readonly int HeaderLength;
    public readonly uint Length;
    /// <summary>Bool: 0/1; Int: the long's bits; UInt: the value; Float32/64: the IEEE bits.</summary>
    public readonly ulong Bits;

    private MsgPackToken(TokenKind kind, int headerLength, uint length = 0, ulong bits = 0, sbyte extType = 0)
    {
        Kind = kind;
        HeaderLength = headerLength;
        Length = length;
        Bits = bits;
        ExtType = extType;
    }

    /// <summary>Payload bytes after the header (str/bin/ext); 0 for other kinds.</summary>
    public long PayloadLength => Kind is TokenKind.Str or TokenKind.Bin or TokenKind.Ext ? Length : 0;

    /// <summary>
    /// Parses the header at the start of <paramref name="s"/>. Returns false when more bytes are needed for the
    /// header itself (nothing is consumed). Throws <see cref="MsgPackException"/> (Malformed) on 0xc1.
    /// </summary>
    /// <param name="offset">Position of <paramref name="s"/> in the message, for error messages only.</param>
    public static bool TryParse(ReadOnlySpan<byte> s, long offset, out MsgPackToken token)
    {
        token = default;
        if (s.IsEmpty)
        {
            return false;
        }
        byte b = s[0];
        if (b <= 0x7f) { token = new(TokenKind.Int, 1, bits: b); return true; }
        if (b >= 0xe0) { token = new(TokenKind.Int, 1, bits: unchecked((ulong)(long)(sbyte)b)); return true; }
        if (b <= 0x8f) { token = new(TokenKind.Map, 1, (uint)(b & 0x0f)); return true; }
        if (b <= 0x9f) { token = new(TokenKind.Array, 1, (uint)(b & 0x0f)); return true; }
        if (b <= 0xbf) { token = new(TokenKind.Str, 1, (uint)(b & 0x1f)); return true; }

        int need = NeededHeaderBytes(b);
        if (need == 0)
        {
            throw new MsgPackException(MsgPackErrorCode.Malformed, offset, "Byte 0xc1 is never used in MessagePack");
        }
        if (s.Length < need)
        {
            return false;
        }
        var p = s[1..];
        token = b switch
        {
            0xc0 => new(TokenKind.Nil, 1),
            0xc2 => new(TokenKind.Bool, 1, bits: 0),
            0xc3 => new(TokenKind.Bool, 1, bits: 1),
            0xc4 => new(TokenKind.Bin, 2, p[0]),
            0xc5 => new(TokenKind.Bin, 3, BinaryPrimitives.ReadUInt16BigEndian(p)),
            0xc6 => new(TokenKind.Bin, 5, BinaryPrimitives.ReadUInt32BigEndian(p)),
            0xc7 => new(TokenKind.Ext, 3, p[0], extType: unchecked((sbyte)p[1])),
            0xc8 => new(TokenKind.Ext, 4, BinaryPrimitives.ReadUInt16BigEndian(p), extType: unchecked((sbyte)p[2])),
            0xc9 => new(TokenKind.Ext, 6, BinaryPrimitives.ReadUInt32BigEndian(p), extType: unchecked((sbyte)p[4])),
            0xca => new(TokenKind.Float32, 5, bits: BinaryPrimitives.ReadUInt32BigEndian(p)),
            0xcb => new(TokenKind.Float64, 9, bits: BinaryPrimitives.ReadUInt64BigEndian(p)),
            0xcc => new(TokenKind.Int, 2, bits: p[0]),
            0xcd => new(TokenKind.Int, 3, bits: BinaryPrimitives.ReadUInt16BigEndian(p)),
            0xce => new(TokenKind.Int, 5, bits: BinaryPrimitives.ReadUInt32BigEndian(p)),
            0xcf => UInt64Token(BinaryPrimitives.ReadUInt64BigEndian(p)),
            0xd0 => new(TokenKind.Int, 2, bits: unchecked((ulong)(long)(sbyte)p[0])),
            0xd1 => new(TokenKind.Int, 3, bits: unchecked((ulong)(long)BinaryPrimitives.ReadInt16BigEndian(p))),
            0xd2 => new(TokenKind.Int, 5, bits: unchecked((ulong)(long)BinaryPrimitives.ReadInt32BigEndian(p))),
            0xd3 => new(TokenKind.Int, 9, bits: BinaryPrimitives.ReadUInt64BigEndian(p)),
            0xd4 => new(TokenKind.Ext, 2, 1, extType: unchecked((sbyte)p[0])),
            0xd5 => new(TokenKind.Ext, 2, 2, extType: unchecked((sbyte)p[0])),
            0xd6 => new(TokenKind.Ext, 2, 4, extType: unchecked((sbyte)p[0])),
            0xd7 => new(TokenKind.Ext, 2, 8, extType: unchecked((sbyte)p[0])),
            0xd8 => new(TokenKind.Ext, 2, 16, extType: unchecked((sbyte)p[0])),
            0xd9 => new(TokenKind.Str, 2, p[0]),
            0xda => new(TokenKind.Str, 3, BinaryPrimitives.ReadUInt16BigEndian(p)),
            0xdb => new(TokenKind.Str, 5, BinaryPrimitives.ReadUInt32BigEndian(p)),
            0xdc => new(TokenKind.Array, 3, BinaryPrimitives.ReadUInt16BigEndian(p)),
            0xdd => new(TokenKind.Array, 5, BinaryPrimitives.ReadUInt32BigEndian(p)),
            0xde => new(TokenKind.Map, 3, BinaryPrimitives.ReadUInt16BigEndian(p)),
            _ /* 0xdf */ => new(TokenKind.Map, 5, BinaryPrimitives.ReadUInt32BigEndian(p)),
        };
        return true;
    }

    private static MsgPackToken UInt64Token(ulong v) =>
        v <= long.MaxValue ? new(TokenKind.Int, 9, bits: v) : new(TokenKind.UInt, 9, bits: v);

    // Header size (type byte plus fixed fields) for the 0xc0..0xdf range; 0 marks the never-used 0xc1.
    private static int NeededHeaderBytes(byte b) => b switch
    {
        0xc0 or 0xc2 or 0xc3 => 1,
        0xc1 => 0,
        0xc4 or 0xcc or 0xd0 or 0xd9 => 2,
        0xc5 or 0xcd or 0xd1 or 0xda or 0xdc or 0xde => 3,
        0xc6 or 0xca or 0xce or 0xd2 or 0xdb or 0xdd or 0xdf => 5,
        0xc7 => 3,
        0xc8 => 4,
        0xc9 => 6,
        0xcb or 0xcf or 0xd3 => 9,
        _ /* 0xd4..0xd8 fixext */ => 2,
    };

    /// <summary>
    /// Validates a timestamp (ext −1) payload and returns seconds and nanoseconds. Lengths 4, 8 and 12 only;
    /// nanoseconds must be below 10^9.
    /// </summary>
    public static (long Seconds, uint Nanoseconds) ReadTimestamp(ReadOnlySpan<byte> data, long offset)
    {
        switch (data.Length)
        {
            case 4:
                return (BinaryPrimitives.ReadUInt32BigEndian(data), 0);
            case 8:
            {
                ulong v = BinaryPrimitives.ReadUInt64BigEndian(data);
                uint ns = (uint)(v >> 34);
                CheckNanoseconds(ns, offset);
                return ((long)(v & 0x3_ffff_ffffUL), ns);
            }
            case 12:
            {
                uint ns = BinaryPrimitives.ReadUInt32BigEndian(data);
                CheckNanoseconds(ns, offset);
                return (BinaryPrimitives.ReadInt64BigEndian(data[4..]), ns);
            }
            default:
                throw new MsgPackException(MsgPackErrorCode.Malformed, offset,
                    $"Timestamp extension must be 4, 8 or 12 bytes, not {data.Length}");
        }
    }

    private static void CheckNanoseconds(uint ns, long offset)
    {
        if (ns >= 1_000_000_000u)
        {
            throw new MsgPackException(MsgPackErrorCode.Malformed, offset,
                $"Timestamp nanoseconds must be below 1e9, got {ns}");
        }
    }
}
