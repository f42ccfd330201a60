namespace Serving.Protocol.Rpc;

/// <summary>
/// The stable error codes carried in the <c>code</c> field of an error reply <c>{code, message, data?}</c>.
/// Clients branch on these strings; messages are for people and may change.
/// </summary>
public static class RpcErrorCodes
{
    /// <summary>The request is malformed: bad shape, wrong or unknown argument, value out of range. Also sent
    /// (when the msgid is known) just before the server closes a connection for a protocol error.</summary>
    public const string BadRequest = "bad_request";

    /// <summary>Unknown method, model or msgid (e.g. <c>cancel</c> of a request the caller does not own).</summary>
    public const string NotFound = "not_found";

    /// <summary>Too much work queued or too many requests in flight on this connection; retry later.</summary>
    public const string Overloaded = "overloaded";

    /// <summary>The prompt plus requested tokens do not fit the model's context.</summary>
    public const string ContextExceeded = "context_exceeded";

    /// <summary>Authentication is required (call <c>auth {token}</c> first) or the token is wrong.</summary>
    public const string Unauthorized = "unauthorized";

    /// <summary>The server failed; details are in the server log, never in the reply.</summary>
    public const string Internal = "internal";

    /// <summary>The request was cancelled (by <c>cancel</c>, by the server shutting down, or by a disconnect).</summary>
    public const string Cancelled = "cancelled";

    /// <summary>The server is shutting down and takes no new requests; retry on another server or later.</summary>
    public const string Unavailable = "unavailable";
}
