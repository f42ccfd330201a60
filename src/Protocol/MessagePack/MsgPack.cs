using System.Buffers;

namespace Serving.Protocol.MessagePack;

/// <summary>One-call encode and decode of whole messages.</summary>
public static class MsgPack
{
    /// <summary>Encodes <paramref name="value"/> in its smallest form into a new array.</summary>
    public static byte[] Encode(MsgValue value)
    {
        var output = new ArrayBufferWriter<byte>();
        new MsgPackWriter(output).Write(value);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Decodes a buffer that must hold exactly one value under <paramref name="limits"/> (default limits when null).
    /// </summary>
    /// <exception cref="MsgPackException">Truncated, malformed (including trailing bytes after the value),
    /// over a limit, or nested too deep.</exception>
    public static MsgValue Decode(ReadOnlySpan<byte> message, MsgPackLimits? limits = null)
    {
        var reader = new MsgPackReader(message, limits);
        var value = reader.Read();
        if (reader.Remaining != 0)
        {
            throw new MsgPackException(MsgPackErrorCode.Malformed, reader.Consumed,
                $"{reader.Remaining} trailing bytes after the value");
        }
        return value;
    }
}
