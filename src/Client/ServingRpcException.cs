using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Client;

/// <summary>
/// The server answered a call with an error reply <c>{code, message, data?}</c>. The connection stays usable.
/// Branch on <see cref="Code"/> (the stable strings of <see cref="RpcErrorCodes"/>: bad_request, not_found,
/// overloaded, context_exceeded, unauthorized, internal, cancelled, unavailable); the message is for people.
/// </summary>
public sealed class ServingRpcException : Exception
{
    /// <summary>Creates the exception from the parts of an error reply.</summary>
    /// <param name="code">The stable error code.</param>
    /// <param name="message">The server's human-readable message.</param>
    /// <param name="errorData">The optional <c>data</c> field (nil when absent), e.g. both token counts for context_exceeded.</param>
    public ServingRpcException(string code, string message, MsgValue errorData = default)
        : base(message)
    {
        ArgumentException.ThrowIfNullOrEmpty(code);
        Code = code;
        ErrorData = errorData;
    }

    /// <summary>The stable error code (see <see cref="RpcErrorCodes"/>).</summary>
    public string Code { get; }

    /// <summary>The reply's <c>data</c> field; nil when the server sent none. (Named so it does not hide <see cref="Exception.Data"/>.)</summary>
    public MsgValue ErrorData { get; }

    /// <summary>True for codes that mean "try again later": overloaded and unavailable.</summary>
    public bool IsRetriable => Code is RpcErrorCodes.Overloaded or RpcErrorCodes.Unavailable;

    internal static ServingRpcException FromReply(MsgValue error)
    {
        // RpcException knows the wire shape, including another server's non-map errors (→ internal).
        var e = RpcException.FromMsgValue(error);
        return new ServingRpcException(e.Code, e.Message, e.ErrorData);
    }
}
