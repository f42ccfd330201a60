using System.Buffers;
using MessagePack;
using Microsoft.Extensions.Logging;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Server;

/// <summary>
/// The dispatch side of one connection: frames the bytes its <see cref="RpcTransport"/> receives into messages
/// (limits enforced before allocation), classifies them, enforces auth, starts handlers on the thread pool, tracks
/// them for <c>cancel</c>, and writes their replies (in completion order) back through the transport.
/// Protocol errors close the connection (after an error reply when the msgid is known); semantic errors reply
/// and keep it open.
/// </summary>
internal sealed class RpcDispatcher
{
    private sealed class RunningCall(uint? messageId, CancellationTokenSource cancellation)
    {
        public uint? MessageId { get; } = messageId;
        public CancellationTokenSource Cancellation { get; } = cancellation;
        public Task Task { get; set; } = Task.CompletedTask;
    }

    /// <summary>What <see cref="OnReceivedAsync"/> did with a buffer.</summary>
    /// <param name="Consumed">End of the last whole message handled (the rest is an incomplete message).</param>
    /// <param name="Framed">Whether at least one whole message was handled.</param>
    /// <param name="Close">Why the connection must close now; null to go on reading.</param>
    public readonly record struct ReceiveResult(SequencePosition Consumed, bool Framed, RpcCloseReason? Close);

    private readonly RpcServer _server;
    private readonly RpcTransport _transport;
    private readonly ILogger _log;
    private MsgPackFramer _framer;
    private readonly Lock _callsLock = new();
    private readonly HashSet<RunningCall> _running = [];
    // Keyed by client-chosen msgids, so hashed with MessagePack-CSharp's collision-resistant comparer for untrusted
    // data (also bounded by MaxInFlightPerConnection).
    private readonly Dictionary<uint, RunningCall> _byId = new(MessagePackSecurity.UntrustedData.GetEqualityComparer<uint>());
    private bool _authenticated;
    private int _authFailures;

    public RpcDispatcher(RpcServer server, RpcTransport transport)
    {
        _server = server;
        _transport = transport;
        _log = server.Logger;
        _framer = new MsgPackFramer(server.Options.Limits);
        _authenticated = !server.RequiresAuth;
    }

    /// <summary>True while a call is running (an idle timeout does not apply then).</summary>
    public bool IsBusy
    {
        get
        {
            lock (_callsLock)
            {
                return _running.Count > 0;
            }
        }
    }

    // ---------------------------------------------------------------- framing

    /// <summary>
    /// Handles every whole message at the start of <paramref name="buffer"/> (which begins where the last call's
    /// <see cref="ReceiveResult.Consumed"/> was). The framer resumes an incomplete message where it stopped.
    /// </summary>
    public async ValueTask<ReceiveResult> OnReceivedAsync(ReadOnlySequence<byte> buffer)
    {
        bool framed = false;
        try
        {
            while (_framer.TryReadFrame(ref buffer, out var frame))
            {
                framed = true;
                if (await HandleFrameAsync(frame).ConfigureAwait(false) is { } close)
                {
                    return new ReceiveResult(buffer.Start, true, close);
                }
            }
        }
        catch (RpcException ex) when (ex.IsProtocolError)
        {
            // The stream cannot be resynchronized after a framing error; reply if the bytes show a msgid.
            await ReplyProtocolErrorAsync(PeekId(buffer), ex.Message).ConfigureAwait(false);
            return new ReceiveResult(buffer.Start, framed, RpcCloseReason.ProtocolError);
        }
        return new ReceiveResult(buffer.Start, framed, null);
    }

    /// <summary>The client closed its side with <paramref name="rest"/> (an incomplete message) unread: a protocol error.</summary>
    public ValueTask OnEndedInsideMessageAsync(ReadOnlySequence<byte> rest) =>
        ReplyProtocolErrorAsync(PeekId(rest), "Connection ended inside a message");

    private static uint? PeekId(in ReadOnlySequence<byte> bytes) => RpcMessage.TryPeekRequestId(bytes, out uint id) ? id : null;

    /// <summary>Handles one whole message; a close reason when the connection must close.</summary>
    private async ValueTask<RpcCloseReason?> HandleFrameAsync(ReadOnlySequence<byte> frame)
    {
        RpcMessage message;
        try
        {
            message = RpcMessage.Parse(frame);
        }
        catch (RpcException ex) when (ex.IsProtocolError)
        {
            await ReplyProtocolErrorAsync(ex.MessageId ?? PeekId(frame), ex.Message).ConfigureAwait(false);
            return RpcCloseReason.ProtocolError;
        }

        switch (message.Type)
        {
            case RpcMessageType.Response:
                await ReplyProtocolErrorAsync(message.MessageId, "The server does not accept responses").ConfigureAwait(false);
                return RpcCloseReason.ProtocolError;
            case RpcMessageType.Notification:
                OnNotification(message.Method!, message.Params);
                return null;
            default:
                return await OnRequestAsync(message.MessageId, message.Method!, message.Params).ConfigureAwait(false);
        }
    }

    private async ValueTask ReplyProtocolErrorAsync(uint? messageId, string detail)
    {
        RpcServerLog.ProtocolError(_log, _transport.Id, detail);
        if (messageId is uint id)
        {
            await SendResponseAsync(id, new RpcException(RpcErrorCodes.BadRequest, detail).ToMsgValue(), default)
                .ConfigureAwait(false);
        }
    }

    // ---------------------------------------------------------------- dispatch

    private async ValueTask<RpcCloseReason?> OnRequestAsync(uint id, string method, MsgValue @params)
    {
        if (method == RpcMethods.Auth)
        {
            return await OnAuthAsync(id, @params).ConfigureAwait(false);
        }
        _server.TryGetMethod(method, out var registration);
        if (!_authenticated && registration?.IsPublic != true)
        {
            await SendErrorAsync(id, RpcErrorCodes.Unauthorized, "Authentication required: call auth {token} first").ConfigureAwait(false);
            return null;
        }
        if (method == RpcMethods.Cancel)
        {
            await OnCancelAsync(id, @params).ConfigureAwait(false);
            return null;
        }
        if (_server.IsStopping)
        {
            await SendErrorAsync(id, RpcErrorCodes.Unavailable, "The server is shutting down").ConfigureAwait(false);
            return null;
        }
        if (registration is null)
        {
            await SendErrorAsync(id, RpcErrorCodes.NotFound, $"Unknown method '{Shorten(method)}'").ConfigureAwait(false);
            return null;
        }
        string? refusal = null;
        lock (_callsLock)
        {
            if (_byId.ContainsKey(id))
            {
                refusal = RpcErrorCodes.BadRequest;
            }
            else if (_running.Count >= _server.Options.MaxInFlightPerConnection)
            {
                refusal = RpcErrorCodes.Overloaded;
            }
            else
            {
                StartCall(new RpcCall(this, method, id, @params), registration);
            }
        }
        if (refusal is not null)
        {
            await SendErrorAsync(id, refusal, refusal == RpcErrorCodes.Overloaded
                ? $"Too many requests in flight on this connection (limit {_server.Options.MaxInFlightPerConnection})"
                : $"msgid {id} is already in flight on this connection").ConfigureAwait(false);
        }
        return null;
    }

    private void OnNotification(string method, MsgValue @params)
    {
        // No reply is possible, so refusals are only logged.
        _server.TryGetMethod(method, out var registration);
        string? why = null;
        if (!_authenticated && registration?.IsPublic != true)
        {
            why = "not authenticated";
        }
        else if (method == RpcMethods.Cancel)
        {
            var args = TryArgs(@params, RpcFields.MsgId);
            if (args?.GetOptionalInt64(RpcFields.MsgId, 0, uint.MaxValue) is long target)
            {
                TryCancel((uint)target);
            }
            return;
        }
        else if (registration is null || _server.IsStopping)
        {
            why = registration is null ? "unknown method" : "server stopping";
        }
        else
        {
            lock (_callsLock)
            {
                if (_running.Count >= _server.Options.MaxInFlightPerConnection)
                {
                    why = "too many in flight";
                }
                else
                {
                    StartCall(new RpcCall(this, method, null, @params), registration);
                }
            }
        }
        if (why is not null)
        {
            RpcServerLog.NotificationDropped(_log, _transport.Id, Shorten(method), why);
        }
    }

    private static RpcArgs? TryArgs(MsgValue @params, params ReadOnlySpan<string> allowed)
    {
        try
        {
            var args = RpcArgs.FromParams(@params);
            args.EnsureOnly(allowed);
            return args;
        }
        catch (RpcException)
        {
            return null;
        }
    }

    // Called under _callsLock.
    private void StartCall(RpcCall call, RpcServer.Registration registration)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(_transport.Lifetime);
        var running = new RunningCall(call.MessageId, cts);
        _running.Add(running);
        if (call.MessageId is uint id)
        {
            _byId.Add(id, running);
        }
        running.Task = Task.Run(() => RunCallAsync(call, registration, running));
    }

    private async Task RunCallAsync(RpcCall call, RpcServer.Registration registration, RunningCall running)
    {
        MsgValue result = default;
        MsgValue error = default;
        var token = running.Cancellation.Token;
        try
        {
            result = await registration.Handler(call, token).ConfigureAwait(false);
        }
        catch (RpcException ex)
        {
            error = ex.ToMsgValue();
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            error = new RpcException(RpcErrorCodes.Cancelled, "The request was cancelled").ToMsgValue();
        }
        catch (Exception ex)
        {
            // Details stay in the server log; the client learns only that it failed.
            RpcServerLog.HandlerFailed(_log, ex, call.Method, _transport.Id);
            error = new RpcException(RpcErrorCodes.Internal, "Internal error").ToMsgValue();
        }
        finally
        {
            // Leave the tables before replying, so a client may reuse the msgid as soon as it sees the reply.
            lock (_callsLock)
            {
                _running.Remove(running);
                if (running.MessageId is uint mid)
                {
                    _byId.Remove(mid);
                }
            }
            running.Cancellation.Dispose();
            _transport.MarkActivity();
        }
        if (call.MessageId is uint id)
        {
            await SendResponseAsync(id, error, result).ConfigureAwait(false);
        }
    }

    private async ValueTask<RpcCloseReason?> OnAuthAsync(uint id, MsgValue @params)
    {
        string token;
        try
        {
            var args = RpcArgs.FromParams(@params);
            args.EnsureOnly(RpcFields.Token);
            token = args.GetString(RpcFields.Token);
        }
        catch (RpcException ex)
        {
            await SendResponseAsync(id, ex.ToMsgValue(), default).ConfigureAwait(false);
            return null;
        }
        if (_server.TokenMatches(token))
        {
            _authenticated = true;
            await SendResponseAsync(id, default, MsgValue.FromBool(true)).ConfigureAwait(false);
            return null;
        }
        int failures = ++_authFailures;
        RpcServerLog.AuthFailed(_log, _transport.Id, failures);
        await SendErrorAsync(id, RpcErrorCodes.Unauthorized, "Invalid token").ConfigureAwait(false);
        return failures >= _server.Options.MaxAuthFailures ? RpcCloseReason.AuthFailures : null;
    }

    private async ValueTask OnCancelAsync(uint id, MsgValue @params)
    {
        uint target;
        try
        {
            var args = RpcArgs.FromParams(@params);
            args.EnsureOnly(RpcFields.MsgId);
            target = (uint)args.GetInt64(RpcFields.MsgId, 0, uint.MaxValue);
        }
        catch (RpcException ex)
        {
            await SendResponseAsync(id, ex.ToMsgValue(), default).ConfigureAwait(false);
            return;
        }
        if (TryCancel(target))
        {
            await SendResponseAsync(id, default, MsgValue.FromBool(true)).ConfigureAwait(false);
        }
        else
        {
            await SendErrorAsync(id, RpcErrorCodes.NotFound, $"No request with msgid {target} is in flight on this connection")
                .ConfigureAwait(false);
        }
    }

    /// <summary>Cancels this connection's own request <paramref name="messageId"/>; false when none is running.</summary>
    private bool TryCancel(uint messageId)
    {
        RunningCall? running;
        lock (_callsLock)
        {
            _byId.TryGetValue(messageId, out running);
        }
        if (running is null)
        {
            return false;
        }
        try
        {
            running.Cancellation.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // It finished between the lookup and the cancel: its reply is on its way.
        }
        return true;
    }

    /// <summary>Tasks of the calls running now (for graceful shutdown).</summary>
    public Task[] RunningCallTasks()
    {
        lock (_callsLock)
        {
            return _running.Select(r => r.Task).ToArray();
        }
    }

    /// <summary>Cancels every running call (shutdown grace period over).</summary>
    public void CancelCalls()
    {
        RunningCall[] calls;
        lock (_callsLock)
        {
            calls = [.. _running];
        }
        foreach (var call in calls)
        {
            try
            {
                call.Cancellation.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // Already finished.
            }
        }
    }

    private static string Shorten(string s) => s.Length <= 64 ? s : s[..64] + "…";

    // ---------------------------------------------------------------- replies

    /// <summary>Server-unique id of the connection.</summary>
    public long ConnectionId => _transport.Id;

    /// <summary>The client's address.</summary>
    public System.Net.EndPoint? RemoteEndPoint => _transport.RemoteEndPoint;

    private ValueTask<bool> SendErrorAsync(uint id, string code, string message) =>
        SendResponseAsync(id, new RpcException(code, message).ToMsgValue(), default);

    private ValueTask<bool> SendResponseAsync(uint id, MsgValue error, MsgValue result) =>
        _transport.SendFrameAsync((id, error, result),
            static (output, s) => RpcMessage.WriteResponse(output, s.id, s.error, s.result));

    /// <summary>Sends <c>[2, method, [args]]</c>; false when the connection is closed (dropped).</summary>
    public ValueTask<bool> SendNotificationAsync(string method, MsgValue args) =>
        _transport.SendFrameAsync((method, args),
            static (output, s) => RpcMessage.WriteNotification(output, s.method, s.args));
}
