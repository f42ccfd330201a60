using System.Net;
using Microsoft.Extensions.Logging;

namespace Serving.Server;

/// <summary>Why a connection ended (logged with event id 5).</summary>
public enum RpcCloseReason
{
    /// <summary>The client closed its side (end of stream).</summary>
    ClientClosed,
    /// <summary>The socket failed (reset, aborted).</summary>
    SocketError,
    /// <summary>A message broke MessagePack or MessagePack-RPC rules, or exceeded a limit.</summary>
    ProtocolError,
    /// <summary>A message took longer than <see cref="RpcServerOptions.SlowSenderTimeout"/> to arrive.</summary>
    SlowSender,
    /// <summary>Nothing happened for <see cref="RpcServerOptions.IdleTimeout"/>.</summary>
    IdleTimeout,
    /// <summary>The client did not read its replies; <see cref="RpcServerOptions.MaxPendingWriteBytes"/> was passed.</summary>
    WriteBackpressure,
    /// <summary>Too many failed <c>auth</c> attempts.</summary>
    AuthFailures,
    /// <summary>The server stopped.</summary>
    ServerShutdown,
    /// <summary>The connection was idle and its slot went to a new client (connection limits reached).</summary>
    Reclaimed,
}

/// <summary>Log messages of the RPC server, with stable event ids (1–20).</summary>
internal static partial class RpcServerLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "RPC server listening on {EndPoint}")]
    public static partial void Listening(ILogger logger, EndPoint endPoint);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "RPC server stopping (grace {GraceMs} ms)")]
    public static partial void Stopping(ILogger logger, double graceMs);

    [LoggerMessage(EventId = 3, Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote} accepted")]
    public static partial void ConnectionAccepted(ILogger logger, long connectionId, EndPoint? remote);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Connection from {Remote} refused: no slot free (limits: {MaxConnections} connections, {MaxPerAddress} from address {Address}) and none idle to reclaim")]
    public static partial void ConnectionRefused(ILogger logger, EndPoint? remote, string address, int maxConnections, int maxPerAddress);

    [LoggerMessage(EventId = 5, Level = LogLevel.Debug, Message = "Connection {ConnectionId} closed: {Reason}")]
    public static partial void ConnectionClosed(ILogger logger, long connectionId, RpcCloseReason reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Connection {ConnectionId} protocol error: {Detail}")]
    public static partial void ProtocolError(ILogger logger, long connectionId, string detail);

    [LoggerMessage(EventId = 7, Level = LogLevel.Error, Message = "Method {Method} failed on connection {ConnectionId}")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string method, long connectionId);

    [LoggerMessage(EventId = 8, Level = LogLevel.Warning, Message = "Connection {ConnectionId} closed: no complete message within {TimeoutMs} ms")]
    public static partial void SlowSender(ILogger logger, long connectionId, double timeoutMs);

    [LoggerMessage(EventId = 9, Level = LogLevel.Warning, Message = "Connection {ConnectionId} closed: {PendingBytes} reply bytes not read by the client")]
    public static partial void WriteBackpressure(ILogger logger, long connectionId, long pendingBytes);

    [LoggerMessage(EventId = 10, Level = LogLevel.Warning, Message = "Connection {ConnectionId}: authentication failed ({Failures} so far)")]
    public static partial void AuthFailed(ILogger logger, long connectionId, int failures);

    [LoggerMessage(EventId = 11, Level = LogLevel.Debug, Message = "Connection {ConnectionId}: notification {Method} dropped: {Why}")]
    public static partial void NotificationDropped(ILogger logger, long connectionId, string method, string why);

    [LoggerMessage(EventId = 12, Level = LogLevel.Warning, Message = "Accept failed")]
    public static partial void AcceptFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 13, Level = LogLevel.Error, Message = "Connection {ConnectionId} failed")]
    public static partial void ConnectionFailed(ILogger logger, Exception exception, long connectionId);

    [LoggerMessage(EventId = 14, Level = LogLevel.Information, Message = "Connection {ConnectionId} from {Remote} reclaimed: idle, and its slot went to a new client")]
    public static partial void ConnectionReclaimed(ILogger logger, long connectionId, EndPoint? remote);

    [LoggerMessage(EventId = 15, Level = LogLevel.Warning, Message = "Connection {ConnectionId}: auth from {Address} refused unchecked, the address is backing off after {Failures} failures")]
    public static partial void AuthThrottled(ILogger logger, long connectionId, string address, long failures);

    [LoggerMessage(EventId = 16, Level = LogLevel.Information, Message = "Connection {ConnectionId}: request refused, the work budget of {BudgetBytes} bytes is full ({NeededBytes} more needed)")]
    public static partial void OverBudget(ILogger logger, long connectionId, long budgetBytes, long neededBytes);
}
