using System.Net;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Server;

/// <summary>
/// One incoming request (or notification) handed to a method handler. Valid for the duration of the handler;
/// the handler's CancellationToken fires on <c>cancel {msgid}</c>, on disconnect and on shutdown.
/// </summary>
public sealed class RpcCall
{
    private readonly RpcDispatcher _connection;
    private readonly WorkCharge _charge;
    private RpcArgs? _args;

    internal RpcCall(RpcDispatcher connection, string method, uint? messageId, MsgValue @params, WorkCharge charge)
    {
        _connection = connection;
        _charge = charge;
        Method = method;
        MessageId = messageId;
        Params = @params;
    }

    /// <summary>
    /// Charges <paramref name="bytes"/> more to the server's memory budget for work in flight
    /// (<see cref="RpcServerOptions.MaxWorkBytes"/>) for this call: what the handler's own work will hold (a working set,
    /// the tokens it produces). Everything reserved is returned when the call ends, or earlier with <see cref="Release"/>.
    /// </summary>
    /// <exception cref="RpcException"><c>overloaded</c> (retriable, with <c>data: {retriable, limit, needed}</c>) when the
    /// budget has no room: the handler should let it propagate, so the client gets it at once.</exception>
    public void Reserve(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (!_charge.TryAdd(bytes))
        {
            _connection.CountOverBudget(bytes);
            throw _connection.OverBudgetError(bytes);
        }
    }

    /// <summary>Returns up to <paramref name="bytes"/> of what <see cref="Reserve"/> charged, before the call ends.</summary>
    public void Release(long bytes) => _charge.Release(bytes);

    /// <summary>The method name.</summary>
    public string Method { get; }

    /// <summary>The request's msgid; null for a notification (no reply is sent).</summary>
    public uint? MessageId { get; }

    /// <summary>The raw params array.</summary>
    public MsgValue Params { get; }

    /// <summary>
    /// The named arguments (the map in the one-element params array, or none for <c>[]</c>).
    /// </summary>
    /// <exception cref="RpcException">bad_request when params has another shape (the caller gets that error).</exception>
    public RpcArgs Args => _args ??= RpcArgs.FromParams(Params);

    /// <summary>Server-unique id of the connection the call came on (for logs and per-connection state).</summary>
    public long ConnectionId => _connection.ConnectionId;

    /// <summary>The client's address.</summary>
    public EndPoint? RemoteEndPoint => _connection.RemoteEndPoint;

    /// <summary>
    /// Sends <c>[2, method, [args]]</c> on this call's connection (e.g. <c>generate.token</c> while streaming).
    /// Frames never interleave with other writers. Returns false when the connection is already closed (the
    /// notification is dropped); a client that does not read gets its connection closed, not unbounded buffering.
    /// </summary>
    public ValueTask<bool> NotifyAsync(string method, MsgValue args)
    {
        ArgumentException.ThrowIfNullOrEmpty(method);
        return _connection.SendNotificationAsync(method, args);
    }
}
