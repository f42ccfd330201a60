using System.Buffers;
using MessagePack;
using Serving.Protocol.MessagePack;

namespace Serving.Protocol.Rpc;

/// <summary>The first element of every MessagePack-RPC message.</summary>
public enum RpcMessageType
{
    /// <summary><c>[0, msgid, method, params]</c></summary>
    Request = 0,
    /// <summary><c>[1, msgid, error, result]</c></summary>
    Response = 1,
    /// <summary><c>[2, method, params]</c></summary>
    Notification = 2,
}

/// <summary>
/// One classified MessagePack-RPC message. Framing only: it checks the shape the spec requires (array length,
/// type, msgid a uint32, method a str, params an array) and knows nothing of method semantics.
/// </summary>
public readonly struct RpcMessage
{
    private RpcMessage(RpcMessageType type, uint messageId, string? method, MsgValue @params, MsgValue error, MsgValue result)
    {
        Type = type;
        MessageId = messageId;
        Method = method;
        Params = @params;
        Error = error;
        Result = result;
    }

    /// <summary>Request, response or notification.</summary>
    public RpcMessageType Type { get; }

    /// <summary>The msgid (requests and responses; 0 for notifications).</summary>
    public uint MessageId { get; }

    /// <summary>The method name (requests and notifications; null for responses).</summary>
    public string? Method { get; }

    /// <summary>The params array (requests and notifications; nil for responses).</summary>
    public MsgValue Params { get; }

    /// <summary>The error field of a response: nil on success.</summary>
    public MsgValue Error { get; }

    /// <summary>The result field of a response.</summary>
    public MsgValue Result { get; }

    /// <summary>Classifies a decoded message.</summary>
    /// <exception cref="RpcException">A protocol error (<see cref="RpcProtocolFault.InvalidMessage"/>): the message
    /// breaks the framing rules; its MessageId is set when known.</exception>
    public static RpcMessage Parse(MsgValue message)
    {
        if (message.Kind != MsgValueKind.Array)
        {
            throw Invalid($"A message must be an array, not {message.Kind}");
        }
        var items = message.AsArray();
        if (items.Length == 0)
        {
            throw Invalid("A message must not be an empty array");
        }
        if (!items[0].TryGetInt64(out long type) || type is < 0 or > 2)
        {
            throw Invalid($"Unknown message type {items[0]}");
        }
        switch ((RpcMessageType)type)
        {
            case RpcMessageType.Request:
            {
                uint? id = items.Length > 1 && TryGetMessageId(items[1], out uint v) ? v : null;
                if (items.Length != 4)
                {
                    throw Invalid($"A request must have 4 elements, not {items.Length}", id);
                }
                if (id is null)
                {
                    throw Invalid($"msgid must be an unsigned 32-bit integer, not {items[1]}");
                }
                string method = ReadMethod(items[2], id);
                RequireParamsArray(items[3], id);
                return new RpcMessage(RpcMessageType.Request, id.Value, method, items[3], default, default);
            }
            case RpcMessageType.Response:
            {
                uint? id = items.Length > 1 && TryGetMessageId(items[1], out uint v) ? v : null;
                if (items.Length != 4)
                {
                    throw Invalid($"A response must have 4 elements, not {items.Length}", id);
                }
                if (id is null)
                {
                    throw Invalid($"msgid must be an unsigned 32-bit integer, not {items[1]}");
                }
                return new RpcMessage(RpcMessageType.Response, id.Value, null, default, items[2], items[3]);
            }
            default:
            {
                if (items.Length != 3)
                {
                    throw Invalid($"A notification must have 3 elements, not {items.Length}");
                }
                string method = ReadMethod(items[1], null);
                RequireParamsArray(items[2], null);
                return new RpcMessage(RpcMessageType.Notification, 0, method, items[2], default, default);
            }
        }
    }

    /// <summary>
    /// Classifies a whole framed message (from <see cref="MsgPackFramer"/>) without building the envelope as a tree:
    /// the type, msgid and method are read straight from the bytes (a method that is one of <see cref="RpcMethods"/>
    /// costs no allocation) and only params, error and result become <see cref="MsgValue"/>s. A message that breaks
    /// a rule is decoded whole and handed to <see cref="Parse(MsgValue)"/>, so the errors are exactly its errors.
    /// </summary>
    /// <exception cref="RpcException">A protocol error: Malformed (e.g. invalid UTF-8) or InvalidMessage, with the
    /// MessageId set when known.</exception>
    public static RpcMessage Parse(in ReadOnlySequence<byte> frame)
    {
        var reader = new MessagePackReader(frame);
        if (reader.NextMessagePackType == MessagePackType.Array)
        {
            int count = reader.ReadArrayHeader();
            if (TryReadNonNegative(ref reader, out ulong type))
            {
                switch (type)
                {
                    case (ulong)RpcMessageType.Request when count == 4
                        && TryReadNonNegative(ref reader, out ulong id) && id <= uint.MaxValue
                        && TryReadMethod(ref reader, out string? method)
                        && reader.NextMessagePackType == MessagePackType.Array:
                        return new RpcMessage(RpcMessageType.Request, (uint)id, method, MsgPack.ReadValue(ref reader), default, default);
                    case (ulong)RpcMessageType.Response when count == 4
                        && TryReadNonNegative(ref reader, out ulong id) && id <= uint.MaxValue:
                    {
                        var error = MsgPack.ReadValue(ref reader);
                        return new RpcMessage(RpcMessageType.Response, (uint)id, null, default, error, MsgPack.ReadValue(ref reader));
                    }
                    case (ulong)RpcMessageType.Notification when count == 3
                        && TryReadMethod(ref reader, out string? method)
                        && reader.NextMessagePackType == MessagePackType.Array:
                        return new RpcMessage(RpcMessageType.Notification, 0, method, MsgPack.ReadValue(ref reader), default, default);
                }
            }
        }
        // Not a well-formed message: the tree-based rules say exactly what is wrong.
        return Parse(MsgPack.DecodeFrame(frame));
    }

    // A non-empty str method name; false for anything else (invalid UTF-8 included: the slow path reports it).
    private static bool TryReadMethod(ref MessagePackReader reader, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? method)
    {
        method = null;
        if (reader.NextMessagePackType != MessagePackType.String)
        {
            return false;
        }
        try
        {
            method = MsgPack.ReadString(ref reader, reader.Consumed);
        }
        catch (RpcException)
        {
            return false;
        }
        return method.Length > 0;
    }

    /// <summary>
    /// Reads the msgid of a request straight from its bytes (header tokens only), for replying to a request whose
    /// body failed to decode (e.g. invalid UTF-8 in the method, or a size over a limit). False unless the bytes
    /// start like a request.
    /// </summary>
    public static bool TryPeekRequestId(in ReadOnlySequence<byte> message, out uint messageId)
    {
        messageId = 0;
        var reader = new MessagePackReader(message);
        try
        {
            if (!reader.TryReadArrayHeader(out int count) || count != 4
                || !TryReadNonNegative(ref reader, out ulong type) || type != (ulong)RpcMessageType.Request
                || !TryReadNonNegative(ref reader, out ulong id) || id > uint.MaxValue)
            {
                return false;
            }
            messageId = (uint)id;
            return true;
        }
        catch (Exception e) when (e is EndOfStreamException or MessagePackSerializationException)
        {
            return false; // cut short, or not a request header after all
        }
    }

    // A non-negative integer of any width; false for anything else.
    private static bool TryReadNonNegative(ref MessagePackReader reader, out ulong value)
    {
        value = 0;
        if (reader.End || reader.NextMessagePackType != MessagePackType.Integer)
        {
            return false;
        }
        if (reader.NextCode == MessagePackCode.UInt64)
        {
            value = reader.ReadUInt64();
            return true;
        }
        long signed = reader.ReadInt64();
        value = (ulong)signed;
        return signed >= 0;
    }

    /// <summary>Gets a msgid: an integer in 0..2^32−1.</summary>
    public static bool TryGetMessageId(MsgValue value, out uint messageId)
    {
        if (value.TryGetInt64(out long v) && v is >= 0 and <= uint.MaxValue)
        {
            messageId = (uint)v;
            return true;
        }
        messageId = 0;
        return false;
    }

    private static string ReadMethod(MsgValue value, uint? id) =>
        value.TryGetString(out var method) && method.Length > 0
            ? method
            : throw Invalid($"The method must be a non-empty str, not {value.Kind}", id);

    private static void RequireParamsArray(MsgValue value, uint? id)
    {
        if (value.Kind != MsgValueKind.Array)
        {
            throw Invalid($"params must be an array, not {value.Kind}", id);
        }
    }

    private static RpcException Invalid(string message, uint? id = null) =>
        RpcException.Protocol(RpcProtocolFault.InvalidMessage, message, messageId: id);

    /// <summary>Writes <c>[0, msgid, method, [args]]</c> (named arguments in a one-element params array).</summary>
    public static void WriteRequest(IBufferWriter<byte> output, uint messageId, string method, MsgValue args)
    {
        ArgumentException.ThrowIfNullOrEmpty(method);
        var w = new MessagePackWriter(output);
        w.WriteArrayHeader(4);
        w.Write((byte)RpcMessageType.Request);
        w.Write(messageId);
        w.Write(method);
        w.WriteArrayHeader(1);
        MsgPack.Write(ref w, args);
        w.Flush();
    }

    /// <summary>Writes <c>[1, msgid, error, result]</c>; pass nil <paramref name="error"/> for success.</summary>
    public static void WriteResponse(IBufferWriter<byte> output, uint messageId, MsgValue error, MsgValue result)
    {
        var w = new MessagePackWriter(output);
        w.WriteArrayHeader(4);
        w.Write((byte)RpcMessageType.Response);
        w.Write(messageId);
        MsgPack.Write(ref w, error);
        MsgPack.Write(ref w, result);
        w.Flush();
    }

    /// <summary>Writes <c>[2, method, [args]]</c>.</summary>
    public static void WriteNotification(IBufferWriter<byte> output, string method, MsgValue args)
    {
        ArgumentException.ThrowIfNullOrEmpty(method);
        var w = new MessagePackWriter(output);
        w.WriteArrayHeader(3);
        w.Write((byte)RpcMessageType.Notification);
        w.Write(method);
        w.WriteArrayHeader(1);
        MsgPack.Write(ref w, args);
        w.Flush();
    }
}
