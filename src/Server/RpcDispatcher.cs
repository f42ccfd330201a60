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
    private sealed class RunningCall(uint? messageId, CancellationTokenSource cancellation, WorkCharge charge)
    {
        public uint? MessageId { get; } = messageId;
        public CancellationTokenSource Cancellation { get; } = cancellation;
        public WorkCharge Charge { get; } = charge;
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
    private bool _authWaiting;   // under _callsLock: an auth attempt waits its turn (per-address back-off)
    private bool _reclaimed;     // under _callsLock: the slot went to a new client; no call starts any more
    private int _replying;       // under _callsLock: calls that left the tables but whose reply is not queued yet

    public RpcDispatcher(RpcServer server, RpcTransport transport)
    {
        _server = server;
        _transport = transport;
        _log = server.Logger;
        _framer = new MsgPackFramer(server.Options.Limits);
        _authenticated = !server.RequiresAuth;
    }

    /// <summary>True while a call is running or an auth waits its turn (an idle timeout does not apply then).</summary>
    public bool IsBusy
    {
        get
        {
            lock (_callsLock)
            {
                return _running.Count > 0 || _replying > 0 || _authWaiting;
            }
        }
    }

    /// <summary>When not busy, marks the connection reclaimed (no call starts after this) and returns true.</summary>
    public bool TryMarkReclaimed()
    {
        lock (_callsLock)
        {
            if (_running.Count > 0 || _replying > 0 || _authWaiting || _reclaimed)
            {
                return false;
            }
            _reclaimed = true;
            return true;
        }
    }

    /// <summary>Completes when no call is running (the client half-closed: nothing new can start).</summary>
    public async Task WhenCallsEndedAsync()
    {
        while (RunningCallTasks() is { Length: > 0 } calls)
        {
            await Task.WhenAll(calls).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// What a whole message of <paramref name="bytes"/> bytes holding <paramref name="values"/> values takes while it is
    /// decoded and its call runs, charged to the work budget before it is decoded: its received bytes (held until it is
    /// decoded), the decoder's copy of a string cut across buffer segments, its strings as UTF-16 (at most two bytes per
    /// byte), one 24-byte value per value plus array and map slack, and a fixed part for the call itself. Measured
    /// against the process: a 4 MiB tokenize raises the managed heap by about this much until the next collection.
    /// </summary>
    internal static long DecodedCost(long bytes, long values) => 4 * bytes + 32 * values + 512;

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
                if (await HandleFrameAsync(frame, _framer.LastFrameElements).ConfigureAwait(false) is { } close)
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

    /// <summary>
    /// Handles one whole message; a close reason when the connection must close. What decoding it will take is charged
    /// to the work budget first: a request that does not fit is answered <c>overloaded</c> without being decoded.
    /// </summary>
    private async ValueTask<RpcCloseReason?> HandleFrameAsync(ReadOnlySequence<byte> frame, long values)
    {
        lock (_callsLock)
        {
            if (_reclaimed)
            {
                return RpcCloseReason.Reclaimed;
            }
        }
        _transport.ReleaseBuffered(frame.Length);
        var charge = new WorkCharge(_server.Work);
        long cost = DecodedCost(frame.Length, values);
        if (!charge.TryAdd(cost))
        {
            CountOverBudget(cost);
            if (RpcMessage.TryPeekRequestId(frame, out uint refusedId))
            {
                await SendResponseAsync(refusedId, OverBudgetError(cost).ToMsgValue(), default).ConfigureAwait(false);
            }
            return null;
        }
        try
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
                    OnNotification(message.Method!, message.Params, charge);
                    return null;
                default:
                    return await OnRequestAsync(message.MessageId, message.Method!, message.Params, charge).ConfigureAwait(false);
            }
        }
        finally
        {
            // A call that started owns the charge now and releases it when it ends; anything else is done with it.
            if (!charge.HandedOver)
            {
                charge.ReleaseAll();
            }
        }
    }

    /// <summary>Counts and logs a request refused because <paramref name="needed"/> more bytes do not fit the work budget.</summary>
    internal void CountOverBudget(long needed)
    {
        _server.Work.CountRefusal();
        RpcServerLog.OverBudget(_log, _transport.Id, _server.Work.LimitBytes, needed);
    }

    /// <summary>The <c>overloaded</c> error of a request that does not fit the work budget.</summary>
    internal RpcException OverBudgetError(long needed) => new(RpcErrorCodes.Overloaded,
        $"The server's memory budget for work in flight ({_server.Work.LimitBytes >> 20} MiB) is full; retry later",
        MsgValue.Map((RpcFields.Retriable, true), (RpcFields.Limit, _server.Work.LimitBytes), ("needed", needed)));

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

    private async ValueTask<RpcCloseReason?> OnRequestAsync(uint id, string method, MsgValue @params, WorkCharge charge)
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
                StartCall(new RpcCall(this, method, id, @params, charge), registration, charge);
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

    private void OnNotification(string method, MsgValue @params, WorkCharge charge)
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
                    StartCall(new RpcCall(this, method, null, @params, charge), registration, charge);
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
    private void StartCall(RpcCall call, RpcServer.Registration registration, WorkCharge charge)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(_transport.Lifetime);
        charge.HandedOver = true;
        var running = new RunningCall(call.MessageId, cts, charge);
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
        bool idle = false;
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
                _replying++; // still busy until the reply is queued: its slot must not be reclaimed before
            }
            running.Cancellation.Dispose();
            _transport.MarkActivity();
        }
        try
        {
            if (call.MessageId is uint id)
            {
                await SendResponseAsync(id, error, result).ConfigureAwait(false);
            }
        }
        finally
        {
            lock (_callsLock)
            {
                _replying--;
                idle = _running.Count == 0 && _replying == 0;
            }
        }
        // The request and what its handler reserved are freed; the reply, queued, is charged on its own until sent.
        running.Charge.ReleaseAll();
        if (idle)
        {
            _server.OnSlotMayBeFree();
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
        var address = _transport.Address;
        var turn = _server.Auth.Begin(address);
        if (turn.Refused)
        {
            // The address is backing off and its queue of attempts is full: refused without looking at the token.
            RpcServerLog.AuthThrottled(_log, _transport.Id, address.ToString(), _server.Auth.Failures);
            await SendResponseAsync(id, new RpcException(RpcErrorCodes.Unauthorized,
                $"Too many failed authentications from this address; retry in {Math.Ceiling(turn.RetryAfter.TotalSeconds):0} s",
                MsgValue.Map((RpcFields.RetryAfterSeconds, Math.Max(0.001, turn.RetryAfter.TotalSeconds)))).ToMsgValue(), default).ConfigureAwait(false);
            return ++_authFailures >= _server.Options.MaxAuthFailures ? RpcCloseReason.AuthFailures : null;
        }
        if (turn.Wait > TimeSpan.Zero)
        {
            lock (_callsLock)
            {
                _authWaiting = true;
            }
            try
            {
                await Task.Delay(turn.Wait, _server.Options.TimeProvider, _transport.Lifetime).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return RpcCloseReason.ServerShutdown; // the connection closed meanwhile
            }
            finally
            {
                lock (_callsLock)
                {
                    _authWaiting = false;
                }
            }
        }
        if (_server.TokenMatches(token))
        {
            _server.Auth.Succeeded(address);
            _authenticated = true;
            await SendResponseAsync(id, default, MsgValue.FromBool(true)).ConfigureAwait(false);
            return null;
        }
        _server.Auth.Failed(address);
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
