using Serving.Protocol.MessagePack;

namespace Serving.Protocol.Rpc;

/// <summary>
/// An error reply. Thrown by a method handler, it becomes <c>{code, message, data?}</c> for that one request
/// (the connection stays open); thrown by a client, it carries the server's reply. The message is sent to the
/// client as-is, so it must not contain secrets, stack traces or addresses.
/// </summary>
public sealed class RpcException : Exception
{
    /// <summary>Creates an error with a stable <paramref name="code"/> (see <see cref="RpcErrorCodes"/>).</summary>
    /// <param name="errorData">Optional structured detail (e.g. both token counts for context_exceeded); nil for none.</param>
    public RpcException(string code, string message, MsgValue errorData = default)
        : base(message)
    {
        ArgumentException.ThrowIfNullOrEmpty(code);
        Code = code;
        ErrorData = errorData;
    }

    /// <summary>The stable error code, e.g. <see cref="RpcErrorCodes.BadRequest"/>.</summary>
    public string Code { get; }

    /// <summary>The optional <c>data</c> field; nil when absent.</summary>
    public MsgValue ErrorData { get; }

    /// <summary>The error as the wire map <c>{code, message}</c> or <c>{code, message, data}</c>.</summary>
    public MsgValue ToMsgValue() => ErrorData.IsNil
        ? MsgValue.Map(("code", Code), ("message", Message))
        : MsgValue.Map(("code", Code), ("message", Message), ("data", ErrorData));

    /// <summary>
    /// Reads an error field of a response. A map with a str <c>code</c> keeps its code, message and data;
    /// anything else (another server's convention) becomes code <see cref="RpcErrorCodes.Internal"/> with the
    /// value rendered as the message.
    /// </summary>
    public static RpcException FromMsgValue(MsgValue error)
    {
        if (error.Kind == MsgValueKind.Map && error.TryGetValue("code", out var code) && code.TryGetString(out var c) && c.Length > 0)
        {
            string message = error.TryGetValue("message", out var m) && m.TryGetString(out var s) ? s : "";
            error.TryGetValue("data", out var data);
            return new RpcException(c, message, data);
        }
        return new RpcException(RpcErrorCodes.Internal, error.ToString());
    }
}
