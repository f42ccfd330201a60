namespace Serving.Protocol.Rpc;

/// <summary>
/// A message that breaks the MessagePack-RPC framing rules (not an array, wrong length or type, bad msgid or
/// method). The stream cannot be trusted afterwards: the receiver closes the connection, replying first when
/// <see cref="MessageId"/> is known.
/// </summary>
public sealed class RpcProtocolException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="messageId">The request's msgid when it could be read, else null.</param>
    public RpcProtocolException(string message, uint? messageId = null)
        : base(message)
    {
        MessageId = messageId;
    }

    /// <summary>The msgid of the offending request when known (an error reply can then be sent before closing).</summary>
    public uint? MessageId { get; }
}
