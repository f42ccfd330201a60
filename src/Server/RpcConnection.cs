using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Server;

/// <summary>
/// One client connection. The read loop frames whole messages (resumable scan, limits enforced before
/// allocation), classifies them and dispatches; handlers run on the thread pool and reply in any order. All
/// frames go through one write lock into an output pipe drained by a send loop, so frames never interleave and
/// the bytes waiting for a slow reader are counted and capped.
/// Protocol errors close the connection (after an error reply when the msgid is known); semantic errors reply
/// and keep it open.
/// </summary>
internal sealed class RpcConnection
{
    private sealed class RunningCall(uint? messageId, CancellationTokenSource cancellation)
    {
        public uint? MessageId { get; } = messageId;
        public CancellationTokenSource Cancellation { get; } = cancellation;
        public Task Task { get; set; } = Task.CompletedTask;
    }

    private readonly RpcServer _server;
    private readonly Socket _socket;
    private readonly ILogger _log;
    private readonly PipeReader _input;
    // pauseWriterThreshold 0: FlushAsync never blocks, so a writer never waits on a slow client while holding the
    // write lock; the bound is enforced by counting _pendingWriteBytes instead.
    private readonly Pipe _output = new(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0, useSynchronizationContext: false));
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _lifetime = new();   // cancelled when the connection closes
    private readonly MsgPackStreamDecoder _decoder;
    private readonly Lock _callsLock = new();
    private readonly HashSet<RunningCall> _running = [];
    // Keyed by client-chosen msgids; bounded by MaxInFlightPerConnection, so even all-colliding keys cost little.
    private readonly Dictionary<uint, RunningCall> _byId = [];
    private Task _sendLoop = Task.CompletedTask;
    private long _pendingWriteBytes;
    private long _lastActivity;   // Environment.TickCount64 of the last bytes received or reply sent
    private long _messageStart;   // TickCount64 when the current incomplete message began; 0 when none
    private bool _authenticated;
    private int _authFailures;
    private int _closed;

    public RpcConnection(RpcServer server, Socket socket, long id)
    {
        _server = server;
        _socket = socket;
        _log = server.Logger;
        Id = id;
        RemoteEndPoint = RpcServer.SafeRemote(socket);
        _authenticated = !server.RequiresAuth;
        _decoder = new MsgPackStreamDecoder(server.Options.Limits);
        _input = PipeReader.Create(new NetworkStream(socket, ownsSocket: false),
            new StreamPipeReaderOptions(bufferSize: 16 * 1024, leaveOpen: true));
        _lastActivity = Environment.TickCount64;
    }

    public long Id { get; }

    public EndPoint? RemoteEndPoint { get; }

    /// <summary>Completes when the connection is closed and its loops have ended.</summary>
    public Task Completion { get; private set; } = Task.CompletedTask;

    public void Start() => Completion = RunAsync();

    private async Task RunAsync()
    {
        await Task.Yield();
        _sendLoop = SendLoopAsync();
        RpcCloseReason reason;
        try
        {
            reason = await ReadLoopAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            reason = RpcCloseReason.SocketError;
        }
        catch (Exception ex)
        {
            // A bug here must end this connection only, never the server.
            RpcServerLog.ConnectionFailed(_log, ex, Id);
            reason = RpcCloseReason.SocketError;
        }
        await CloseAsync(reason).ConfigureAwait(false);
        await _sendLoop.ConfigureAwait(false);
        await _input.CompleteAsync().ConfigureAwait(false);
        _decoder.Dispose();
        _server.OnConnectionClosed(this);
    }

    // ---------------------------------------------------------------- reading

    private async Task<RpcCloseReason> ReadLoopAsync()
    {
        var ct = _lifetime.Token;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await _input.ReadAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return RpcCloseReason.ServerShutdown; // closed by someone else, who logged the real reason
            }
            var buffer = result.Buffer;
            long now = Environment.TickCount64;
            bool completedAny = false;
            try
            {
                while (!buffer.IsEmpty)
                {
                    int taken = _decoder.Append(buffer);
                    buffer = buffer.Slice(taken);
                    bool framed = false;
                    while (_decoder.TryReadFrame(out var frame))
                    {
                        framed = true;
                        completedAny = true;
                        if (!await HandleFrameAsync(frame).ConfigureAwait(false))
                        {
                            _input.AdvanceTo(result.Buffer.End);
                            return RpcCloseReason.ProtocolError;
                        }
                    }
                    if (taken == 0 && !framed)
                    {
                        // Cannot happen while the scanner enforces MaxMessageBytes (a full buffer holding no whole
                        // message is a limit error); guards the loop against spinning should that ever change.
                        throw new MsgPackException(MsgPackErrorCode.LimitExceeded, -1, "Message exceeds the size limit");
                    }
                }
            }
            catch (MsgPackException ex)
            {
                // The stream cannot be resynchronized after a framing error; reply if the bytes show a msgid.
                await ReplyProtocolErrorAsync(PeekId(_decoder.Buffered), ex.Message).ConfigureAwait(false);
                _input.AdvanceTo(result.Buffer.End);
                return RpcCloseReason.ProtocolError;
            }
            _input.AdvanceTo(result.Buffer.End);
            if (!result.Buffer.IsEmpty)
            {
                Volatile.Write(ref _lastActivity, now);
            }
            long start = Volatile.Read(ref _messageStart);
            Volatile.Write(ref _messageStart,
                _decoder.BufferedBytes == 0 ? 0 : completedAny || start == 0 ? now : start);

            if (result.IsCompleted || result.IsCanceled)
            {
                if (_decoder.BufferedBytes > 0)
                {
                    await ReplyProtocolErrorAsync(PeekId(_decoder.Buffered), "Connection ended inside a message")
                        .ConfigureAwait(false);
                    return RpcCloseReason.ProtocolError;
                }
                return RpcCloseReason.ClientClosed;
            }
        }
    }

    private static uint? PeekId(ReadOnlySpan<byte> bytes) => RpcMessage.TryPeekRequestId(bytes, out uint id) ? id : null;

    /// <summary>Handles one complete message; false when the connection must close.</summary>
    private async ValueTask<bool> HandleFrameAsync(ReadOnlyMemory<byte> frame)
    {
        RpcMessage message;
        try
        {
            message = RpcMessage.Parse(MsgPack.Decode(frame.Span, _server.Options.Limits));
        }
        catch (MsgPackException ex)
        {
            await ReplyProtocolErrorAsync(PeekId(frame.Span), ex.Message).ConfigureAwait(false);
            return false;
        }
        catch (RpcProtocolException ex)
        {
            await ReplyProtocolErrorAsync(ex.MessageId, ex.Message).ConfigureAwait(false);
            return false;
        }

        switch (message.Type)
        {
            case RpcMessageType.Response:
                await ReplyProtocolErrorAsync(message.MessageId, "The server does not accept responses").ConfigureAwait(false);
                return false;
            case RpcMessageType.Notification:
                OnNotification(message.Method!, message.Params);
                return true;
            default:
                return await OnRequestAsync(message.MessageId, message.Method!, message.Params).ConfigureAwait(false);
        }
    }

    private async ValueTask ReplyProtocolErrorAsync(uint? messageId, string detail)
    {
        RpcServerLog.ProtocolError(_log, Id, detail);
        if (messageId is uint id)
        {
            await SendResponseAsync(id, new RpcException(RpcErrorCodes.BadRequest, detail).ToMsgValue(), default)
                .ConfigureAwait(false);
        }
    }

    // ---------------------------------------------------------------- dispatch

    private async ValueTask<bool> OnRequestAsync(uint id, string method, MsgValue @params)
    {
        if (method == RpcServer.AuthMethod)
        {
            return await OnAuthAsync(id, @params).ConfigureAwait(false);
        }
        _server.TryGetMethod(method, out var registration);
        if (!_authenticated && registration?.IsPublic != true)
        {
            await SendErrorAsync(id, RpcErrorCodes.Unauthorized, "Authentication required: call auth {token} first").ConfigureAwait(false);
            return true;
        }
        if (method == RpcServer.CancelMethod)
        {
            await OnCancelAsync(id, @params).ConfigureAwait(false);
            return true;
        }
        if (_server.IsStopping)
        {
            await SendErrorAsync(id, RpcErrorCodes.Unavailable, "The server is shutting down").ConfigureAwait(false);
            return true;
        }
        if (registration is null)
        {
            await SendErrorAsync(id, RpcErrorCodes.NotFound, $"Unknown method '{Shorten(method)}'").ConfigureAwait(false);
            return true;
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
        return true;
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
        else if (method == RpcServer.CancelMethod)
        {
            var args = TryArgs(@params, "msgid");
            if (args?.GetOptionalInt64("msgid", 0, uint.MaxValue) is long target)
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
            RpcServerLog.NotificationDropped(_log, Id, Shorten(method), why);
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
        var cts = CancellationTokenSource.CreateLinkedTokenSource(_lifetime.Token);
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
            RpcServerLog.HandlerFailed(_log, ex, call.Method, Id);
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
            Volatile.Write(ref _lastActivity, Environment.TickCount64);
        }
        if (call.MessageId is uint id)
        {
            await SendResponseAsync(id, error, result).ConfigureAwait(false);
        }
    }

    private async ValueTask<bool> OnAuthAsync(uint id, MsgValue @params)
    {
        string token;
        try
        {
            var args = RpcArgs.FromParams(@params);
            args.EnsureOnly("token");
            token = args.GetString("token");
        }
        catch (RpcException ex)
        {
            await SendResponseAsync(id, ex.ToMsgValue(), default).ConfigureAwait(false);
            return true;
        }
        if (_server.TokenMatches(token))
        {
            _authenticated = true;
            await SendResponseAsync(id, default, MsgValue.FromBool(true)).ConfigureAwait(false);
            return true;
        }
        int failures = ++_authFailures;
        RpcServerLog.AuthFailed(_log, Id, failures);
        await SendErrorAsync(id, RpcErrorCodes.Unauthorized, "Invalid token").ConfigureAwait(false);
        if (failures >= _server.Options.MaxAuthFailures)
        {
            await CloseAsync(RpcCloseReason.AuthFailures).ConfigureAwait(false);
            return false;
        }
        return true;
    }

    private async ValueTask OnCancelAsync(uint id, MsgValue @params)
    {
        uint target;
        try
        {
            var args = RpcArgs.FromParams(@params);
            args.EnsureOnly("msgid");
            target = (uint)args.GetInt64("msgid", 0, uint.MaxValue);
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

    // ---------------------------------------------------------------- writing

    private ValueTask<bool> SendErrorAsync(uint id, string code, string message) =>
        SendResponseAsync(id, new RpcException(code, message).ToMsgValue(), default);

    private ValueTask<bool> SendResponseAsync(uint id, MsgValue error, MsgValue result) =>
        SendFrameAsync(output => RpcMessage.WriteResponse(output, id, error, result));

    internal ValueTask<bool> SendNotificationAsync(string method, MsgValue args) =>
        SendFrameAsync(output => RpcMessage.WriteNotification(output, method, args));

    /// <summary>Writes one whole frame under the write lock; false when the connection is closed (frame dropped).</summary>
    private async ValueTask<bool> SendFrameAsync(Action<PipeWriter> write)
    {
        await _writeLock.WaitAsync().ConfigureAwait(false);
        bool overflow = false;
        try
        {
            if (Volatile.Read(ref _closed) != 0)
            {
                return false;
            }
            long pending = Interlocked.Read(ref _pendingWriteBytes);
            if (pending > _server.Options.MaxPendingWriteBytes)
            {
                // The client is not reading: close rather than buffer without bound. Memory held is at most
                // the cap plus one frame.
                RpcServerLog.WriteBackpressure(_log, Id, pending);
                overflow = true;
                return false;
            }
            var writer = _output.Writer;
            write(writer);
            Interlocked.Add(ref _pendingWriteBytes, writer.UnflushedBytes);
            await writer.FlushAsync().ConfigureAwait(false);
            return true;
        }
        finally
        {
            _writeLock.Release();
            if (overflow)
            {
                Abort(RpcCloseReason.WriteBackpressure);
            }
        }
    }

    private async Task SendLoopAsync()
    {
        var reader = _output.Reader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                foreach (var segment in buffer)
                {
                    for (int sent = 0; sent < segment.Length;)
                    {
                        sent += await _socket.SendAsync(segment[sent..], SocketFlags.None).ConfigureAwait(false);
                    }
                }
                reader.AdvanceTo(buffer.End);
                Interlocked.Add(ref _pendingWriteBytes, -buffer.Length);
                if (!buffer.IsEmpty)
                {
                    Volatile.Write(ref _lastActivity, Environment.TickCount64);
                }
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            Abort(RpcCloseReason.SocketError);
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    // ---------------------------------------------------------------- timeouts and closing

    /// <summary>Called by the server's heartbeat: enforces the slow-sender and idle timeouts.</summary>
    public void OnHeartbeat(long now)
    {
        if (Volatile.Read(ref _closed) != 0)
        {
            return;
        }
        var options = _server.Options;
        long start = Volatile.Read(ref _messageStart);
        if (start != 0 && now - start > (long)options.SlowSenderTimeout.TotalMilliseconds)
        {
            RpcServerLog.SlowSender(_log, Id, options.SlowSenderTimeout.TotalMilliseconds);
            Abort(RpcCloseReason.SlowSender);
            return;
        }
        bool busy;
        lock (_callsLock)
        {
            busy = _running.Count > 0;
        }
        if (!busy && start == 0 && now - Volatile.Read(ref _lastActivity) > (long)options.IdleTimeout.TotalMilliseconds)
        {
            _ = CloseAsync(RpcCloseReason.IdleTimeout);
        }
    }

    /// <summary>Closes at once: pending output is dropped and every call is cancelled.</summary>
    public void Abort(RpcCloseReason reason)
    {
        if (Interlocked.CompareExchange(ref _closed, 1, 0) != 0)
        {
            return;
        }
        RpcServerLog.ConnectionClosed(_log, Id, reason);
        _lifetime.Cancel();
        _socket.Dispose();
        // The output writer is not completed here (a writer may hold the lock); wake the send loop so it exits.
        _output.Reader.CancelPendingRead();
    }

    /// <summary>
    /// Closes after sending what is already queued (e.g. the error reply before a protocol-error close): cancels
    /// every call, completes the output, waits briefly for the send loop, then closes the socket.
    /// </summary>
    public async Task CloseAsync(RpcCloseReason reason)
    {
        if (Interlocked.CompareExchange(ref _closed, 1, 0) != 0)
        {
            return;
        }
        RpcServerLog.ConnectionClosed(_log, Id, reason);
        _lifetime.Cancel();
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            await _output.Writer.CompleteAsync().ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
        try
        {
            // A client that does not read cannot hold the close up for long.
            await _sendLoop.WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is TimeoutException or SocketException or ObjectDisposedException)
        {
            // Closing anyway.
        }
        _socket.Dispose();
    }
}
