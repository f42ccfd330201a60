using System.Buffers;
using System.Buffers.Binary;
using MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Protocol.MessagePack;

/// <summary>
/// The timestamp extension (type −1) as seconds and nanoseconds since the Unix epoch. MessagePack-CSharp maps it
/// to <see cref="DateTime"/>, which cannot hold the 96-bit form's range (the format allows any int64 of seconds)
/// and does not refuse nanoseconds of a second or more; this reads and writes the payload itself, with the
/// library's ext header.
/// </summary>
internal static class MsgPackTimestamp
{
    /// <summary>The ext type code of timestamps.</summary>
    public const sbyte ExtType = -1;

    /// <summary>Validates a timestamp payload (4, 8 or 12 bytes; nanoseconds below 10^9) and returns its value.</summary>
    /// <param name="at">Offset of the token in its message, for the error.</param>
    /// <exception cref="RpcException">Malformed: wrong length or nanoseconds ≥ 10^9.</exception>
    public static (long Seconds, uint Nanoseconds) Read(in ReadOnlySequence<byte> payload, long at)
    {
        Span<byte> data = stackalloc byte[12];
        if (payload.Length is not (4 or 8 or 12))
        {
            throw RpcException.Protocol(RpcProtocolFault.Malformed, $"Timestamp extension must be 4, 8 or 12 bytes, not {payload.Length}", at);
        }
        data = data[..(int)payload.Length];
        payload.CopyTo(data);
        switch (data.Length)
        {
            case 4:
                return (BinaryPrimitives.ReadUInt32BigEndian(data), 0);
            case 8:
            {
                ulong v = BinaryPrimitives.ReadUInt64BigEndian(data);
                uint ns = (uint)(v >> 34);
                CheckNanoseconds(ns, at);
                return ((long)(v & 0x3_ffff_ffffUL), ns);
            }
            default:
            {
                uint ns = BinaryPrimitives.ReadUInt32BigEndian(data);
                CheckNanoseconds(ns, at);
                return (BinaryPrimitives.ReadInt64BigEndian(data[4..]), ns);
            }
        }
    }

    /// <summary>
    /// Writes a timestamp in its shortest form: 32-bit when nanoseconds are 0 and seconds fit in uint32, 64-bit when
    /// seconds fit in 34 bits, else 96-bit.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nanoseconds"/> ≥ 10^9.</exception>
    public static void Write(ref MessagePackWriter writer, long seconds, uint nanoseconds)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(nanoseconds, 1_000_000_000u);
        if ((ulong)seconds >> 34 == 0)
        {
            if (nanoseconds == 0 && (ulong)seconds <= uint.MaxValue)
            {
                writer.WriteExtensionFormatHeader(new ExtensionHeader(ExtType, 4));
                BinaryPrimitives.WriteUInt32BigEndian(writer.GetSpan(4), (uint)seconds);
                writer.Advance(4);
            }
            else
            {
                writer.WriteExtensionFormatHeader(new ExtensionHeader(ExtType, 8));
                BinaryPrimitives.WriteUInt64BigEndian(writer.GetSpan(8), ((ulong)nanoseconds << 34) | (ulong)seconds);
                writer.Advance(8);
            }
        }
        else
        {
            writer.WriteExtensionFormatHeader(new ExtensionHeader(ExtType, 12));
            var s = writer.GetSpan(12);
            BinaryPrimitives.WriteUInt32BigEndian(s, nanoseconds);
            BinaryPrimitives.WriteInt64BigEndian(s[4..], seconds);
            writer.Advance(12);
        }
    }

    private static void CheckNanoseconds(uint ns, long at)
    {
        if (ns >= 1_000_000_000u)
        {
            throw RpcException.Protocol(RpcProtocolFault.Malformed, $"Timestamp nanoseconds must be below 1e9, got {ns}", at);
        }
    }
}
