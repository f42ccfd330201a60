using Serving.Protocol.MessagePack;

namespace Serving.Protocol.Rpc;

/// <summary>What kind of protocol error an <see cref="RpcException"/> is; <see cref="None"/> for a semantic error.</summary>
public enum RpcProtocolFault
{
    /// <summary>Not a protocol error: an error reply for one request (bad argument, unknown method, overloaded…);
    /// the connection stays open.</summary>
    None = 0,
    /// <summary>The bytes ended inside a MessagePack value (more were required).</summary>
    Truncated,
    /// <summary>The bytes are not valid MessagePack: the never-used byte 0xc1, invalid UTF-8 in a str, a timestamp
    /// of the wrong length or with nanoseconds of a second or more, trailing bytes after the value.</summary>
    Malformed,
    /// <summary>A declared or actual size exceeds a <see cref="MsgPackLimits"/> limit (or what the bytes or the
    /// message limit can back).</summary>
    LimitExceeded,
    /// <summary>Arrays and maps nest deeper than <see cref="MsgPackLimits.MaxDepth"/>.</summary>
    DepthExceeded,
    /// <summary>Valid MessagePack that breaks the MessagePack-RPC message rules: not an array, wrong element count
    /// or type, a msgid that is not a uint32, a method that is not a non-empty str, params that are not an array.</summary>
    InvalidMessage,
}

/// <summary>
/// The one error type of the RPC layer, with a stable <see cref="Code"/> (see <see cref="RpcErrorCodes"/>).
/// <list type="bullet">
/// <item>A <b>semantic</b> error (<see cref="ProtocolFault"/> = None): thrown by a method handler, it becomes the
/// reply <c>{code, message, data?}</c> for that one request and the connection stays open; thrown by the client,
/// it carries the server's error reply. The message is sent to the client as-is, so it must not contain secrets,
/// stack traces or addresses.</item>
/// <item>A <b>protocol</b> error (<see cref="IsProtocolError"/>): bytes that are not MessagePack, over a limit, or
/// not a MessagePack-RPC message. A MessagePack stream cannot be resynchronized after one, so the receiver closes
/// the connection — replying <c>bad_request</c> first when <see cref="MessageId"/> is known. Its code is always
/// <see cref="RpcErrorCodes.BadRequest"/>.</item>
/// </list>
/// </summary>
public sealed class RpcException : Exception
{
    /// <summary>Creates a semantic error with a stable <paramref name="code"/> (see <see cref="RpcErrorCodes"/>).</summary>
    /// <param name="errorData">Optional structured detail (e.g. both token counts for context_exceeded); nil for none.</param>
    public RpcException(string code, string message, MsgValue errorData = default)
        : base(message)
    {
        ArgumentException.ThrowIfNullOrEmpty(code);
        Code = code;
        ErrorData = errorData;
        Offset = -1;
    }

    private RpcException(RpcProtocolFault fault, string message, long offset, uint? messageId)
        : base(offset >= 0 ? $"{message} (at byte {offset})" : message)
    {
        Code = RpcErrorCodes.BadRequest;
        ProtocolFault = fault;
        Offset = offset;
        MessageId = messageId;
    }

    /// <summary>Creates a protocol error (code bad_request).</summary>
    /// <param name="fault">What is wrong; not <see cref="RpcProtocolFault.None"/>.</param>
    /// <param name="message">Human-readable reason; input bytes beyond small numbers are never echoed.</param>
    /// <param name="offset">Byte offset in the message of the token that failed, or −1 when not known.</param>
    /// <param name="messageId">The msgid of the offending request when it could be read, else null.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fault"/> is None.</exception>
    public static RpcException Protocol(RpcProtocolFault fault, string message, long offset = -1, uint? messageId = null)
    {
        ArgumentOutOfRangeException.ThrowIfEqual(fault, RpcProtocolFault.None);
        return new RpcException(fault, message, offset, messageId);
    }

    /// <summary>The stable error code, e.g. <see cref="RpcErrorCodes.BadRequest"/>.</summary>
    public string Code { get; }

    /// <summary>The optional <c>data</c> field of an error reply; nil when absent (always nil for protocol errors).</summary>
    public MsgValue ErrorData { get; }

    /// <summary>What kind of protocol error this is; <see cref="RpcProtocolFault.None"/> for a semantic error.</summary>
    public RpcProtocolFault ProtocolFault { get; }

    /// <summary>True for a protocol error: the connection it came on cannot be used any more.</summary>
    public bool IsProtocolError => ProtocolFault != RpcProtocolFault.None;

    /// <summary>Protocol errors: byte offset from the start of the message of the failing token, or −1.</summary>
    public long Offset { get; }

    /// <summary>Protocol errors: the msgid of the offending request when known (an error reply can then be sent
    /// before closing); null otherwise.</summary>
    public uint? MessageId { get; }

    /// <summary>True for codes that mean "try again later": overloaded and unavailable.</summary>
    public bool IsRetriable => Code is RpcErrorCodes.Overloaded or RpcErrorCodes.Unavailable;

    /// <summary>The error as the wire map <c>{code, message}</c> or <c>{code, message, data}</c>.</summary>
    public MsgValue ToMsgValue() => ErrorData.IsNil
        ? MsgValue.Map((RpcFields.Code, Code), (RpcFields.Message, Message))
        : MsgValue.Map((RpcFields.Code, Code), (RpcFields.Message, Message), (RpcFields.Data, ErrorData));

    /// <summary>
    /// Reads the error field of a response. A map with a str <c>code</c> keeps its code, message and data;
    /// anything else (another server's convention) becomes code <see cref="RpcErrorCodes.Internal"/> with the
    /// value rendered as the message.
    /// </summary>
    public static RpcException FromMsgValue(MsgValue error)
    {
        if (error.Kind == MsgValueKind.Map && error.TryGetValue(RpcFields.Code, out var code) && code.TryGetString(out var c) && c.Length > 0)
        {
            string message = error.TryGetValue(RpcFields.Message, out var m) && m.TryGetString(out var s) ? s : "";
            error.TryGetValue(RpcFields.Data, out var data);
            return new RpcException(c, message, data);
        }
        return new RpcException(RpcErrorCodes.Internal, error.ToString());
    }
}
