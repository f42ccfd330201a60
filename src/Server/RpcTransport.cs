using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Serving.Server;

/// <summary>
/// The transport of one client connection: the socket, its input pipe and an output pipe drained by a send loop,
/// the slow-sender and idle timeouts, and closing. It knows bytes, not messages: what arrives goes to the
/// connection's <see cref="RpcDispatcher"/>, which frames and dispatches it and says how much it consumed.
/// All frames go through one write lock into the output pipe, so frames never interleave and the bytes waiting
/// for a slow reader are counted and capped. Time comes from <see cref="RpcServerOptions.TimeProvider"/>.
/// </summary>
internal sealed class RpcTransport
{
    private const long NoMessage = long.MinValue; // _messageStart when no incomplete message is buffered

    /// <summary>Bytes of an incomplete message a connection may buffer before they are charged to the work budget.</summary>
    internal const long FreeBufferBytes = 64 * 1024;

    private readonly RpcServer _server;
    private readonly Socket _socket;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly PipeReader _input;
    // pauseWriterThreshold 0: FlushAsync never blocks, so a writer never waits on a slow client while holding the
    // write lock; the bound is enforced by counting _pendingWriteBytes instead.
    private readonly Pipe _output = new(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0, useSynchronizationContext: false));
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _lifetime = new();   // cancelled when the connection closes
    private readonly RpcDispatcher _dispatcher;
    private Task _sendLoop = Task.CompletedTask;
    private long _pendingWriteBytes;
    private long _lastActivity;   // TimeProvider timestamp of the last bytes received or sent, or call finished
    private long _messageStart = NoMessage; // timestamp when the current incomplete message began
    private long _bufferedCharge;  // work-budget bytes charged for the incomplete message buffered now
    private int _closed;
    private int _slotReleased;
    private volatile bool _inputEnded; // the client closed its side (FIN); replies still go out

    public RpcTransport(RpcServer server, Socket socket, long id, AddressKey address, EndPoint? remote)
    {
        _server = server;
        _socket = socket;
        _log = server.Logger;
        _time = server.Options.TimeProvider;
        Id = id;
        Address = address;
        RemoteEndPoint = remote;
        _input = PipeReader.Create(new NetworkStream(socket, ownsSocket: false),
            new StreamPipeReaderOptions(bufferSize: 16 * 1024, leaveOpen: true));
        _lastActivity = _time.GetTimestamp();
        _dispatcher = new RpcDispatcher(server, this);
    }

    /// <summary>Server-unique id of the connection.</summary>
    public long Id { get; }

    /// <summary>The client's address.</summary>
    public EndPoint? RemoteEndPoint { get; }

    /// <summary>What per-address limits count this connection by.</summary>
    public AddressKey Address { get; }

    /// <summary>TimeProvider timestamp of the last bytes received or sent, or call finished.</summary>
    public long LastActivity => Volatile.Read(ref _lastActivity);

    /// <summary>
    /// True when the connection could give its slot to a new client without losing anything: open, reading, no message
    /// arriving, no call running and no auth waiting.
    /// </summary>
    public bool IsIdle => Volatile.Read(ref _closed) == 0 && !_inputEnded && Volatile.Read(ref _messageStart) == NoMessage && !_dispatcher.IsBusy;

    /// <summary>True once the server stopped counting this connection against its limits.</summary>
    public bool SlotReleased => Volatile.Read(ref _slotReleased) != 0;

    /// <summary>Marks the slot released; true the first time only (the server counts each connection out once).</summary>
    public bool TryReleaseSlot() => Interlocked.Exchange(ref _slotReleased, 1) == 0;

    /// <summary>Atomically checks the connection is idle and stops it from starting calls; false when it is not idle.</summary>
    public bool TryMarkReclaimed() =>
        Volatile.Read(ref _closed) == 0 && !_inputEnded && Volatile.Read(ref _messageStart) == NoMessage && _dispatcher.TryMarkReclaimed();

    /// <summary>The connection's calls, auth state and framing.</summary>
    public RpcDispatcher Dispatcher => _dispatcher;

    /// <summary>Cancelled when the connection closes (every call's token is linked to it).</summary>
    public CancellationToken Lifetime => _lifetime.Token;

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
        if (reason == RpcCloseReason.ClientClosed)
        {
            // A half-close (FIN) ends the requests, not the replies: every request read before it is answered, a
            // stream runs to its end. A client that is really gone resets the first reply sent to it, and the send
            // loop's error then cancels what is left.
            _inputEnded = true;
            await _dispatcher.WhenCallsEndedAsync().ConfigureAwait(false);
        }
        if (reason is RpcCloseReason.ProtocolError or RpcCloseReason.AuthFailures)
        {
            await LingerAndCloseAsync(reason).ConfigureAwait(false);
        }
        else
        {
            await CloseAsync(reason).ConfigureAwait(false);
        }
        await _sendLoop.ConfigureAwait(false);
        await _input.CompleteAsync().ConfigureAwait(false);
        _server.Work.Release(Interlocked.Exchange(ref _bufferedCharge, 0));
        _server.Work.Release(Interlocked.Exchange(ref _pendingWriteBytes, 0)); // queued replies never sent
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
            long now = _time.GetTimestamp();
            var received = await _dispatcher.OnReceivedAsync(buffer).ConfigureAwait(false);
            if (received.Close is { } close)
            {
                _input.AdvanceTo(buffer.End);
                return close;
            }
            // Whole messages are consumed; an incomplete one stays buffered, all of it examined (the next read
            // waits for new bytes). The dispatcher's framer caps how large that remainder may grow.
            _input.AdvanceTo(received.Consumed, buffer.End);
            if (!buffer.IsEmpty)
            {
                Volatile.Write(ref _lastActivity, now);
            }
            var rest = buffer.Slice(received.Consumed);
            long start = Volatile.Read(ref _messageStart);
            Volatile.Write(ref _messageStart, rest.IsEmpty ? NoMessage : received.Framed || start == NoMessage ? now : start);
            if (!await ChargeBufferedAsync(rest.Length, ct).ConfigureAwait(false))
            {
                return RpcCloseReason.ServerShutdown; // closed while waiting for room; whoever closed it logged why
            }

            if (result.IsCompleted || result.IsCanceled)
            {
                if (!rest.IsEmpty)
                {
                    await _dispatcher.OnEndedInsideMessageAsync(rest).ConfigureAwait(false);
                    return RpcCloseReason.ProtocolError;
                }
                return RpcCloseReason.ClientClosed;
            }
        }
    }

    /// <summary>
    /// A whole message of <paramref name="bytes"/> bytes was cut from the front of the buffer: what was charged for it
    /// while it was incomplete goes back, so its call is charged once (by the dispatcher), not twice.
    /// </summary>
    public void ReleaseBuffered(long bytes)
    {
        long charged, taken;
        do
        {
            charged = Volatile.Read(ref _bufferedCharge);
            taken = Math.Min(bytes, charged);
        }
        while (Interlocked.CompareExchange(ref _bufferedCharge, charged - taken, charged) != charged);
        _server.Work.Release(taken);
    }

    /// <summary>
    /// Charges the work budget for the <paramref name="buffered"/> bytes of an incomplete message beyond the first
    /// <see cref="FreeBufferBytes"/> (or returns what a finished one no longer needs). When the budget has no room,
    /// waits for some before reading on: the socket is not read meanwhile, so TCP makes the client wait, and the
    /// slow-sender timeout still bounds how long. False when the connection closed while waiting.
    /// </summary>
    private async ValueTask<bool> ChargeBufferedAsync(long buffered, CancellationToken ct)
    {
        // Like a socket buffer, the first bytes of a message are free: a small request is always read, framed and, if
        // the budget is full, answered overloaded, instead of waiting behind large ones.
        buffered = Math.Max(0, buffered - FreeBufferBytes);
        long charged = Volatile.Read(ref _bufferedCharge);
        if (buffered <= charged)
        {
            Interlocked.Add(ref _bufferedCharge, buffered - charged);
            _server.Work.Release(charged - buffered);
            return true;
        }
        long more = buffered - charged;
        while (!_server.Work.TryReserve(more))
        {
            try
            {
                await _server.Work.WhenReleasedAsync().WaitAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }
        Interlocked.Add(ref _bufferedCharge, more);
        return true;
    }

    // ---------------------------------------------------------------- writing

    /// <summary>
    /// Writes one whole frame under the write lock (<paramref name="write"/> gets the output and
    /// <paramref name="state"/>; a static lambda keeps this allocation-free). False when the connection is closed
    /// (the frame is dropped) or the client stopped reading and the pending bytes passed
    /// <see cref="RpcServerOptions.MaxPendingWriteBytes"/> (then the connection is aborted).
    /// </summary>
    public async ValueTask<bool> SendFrameAsync<TState>(TState state, Action<IBufferWriter<byte>, TState> write)
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
            write(writer, state);
            long bytes = writer.UnflushedBytes;
            _server.Work.Force(bytes);
            Interlocked.Add(ref _pendingWriteBytes, bytes);
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
                _server.Work.Release(buffer.Length);
                if (!buffer.IsEmpty)
                {
                    MarkActivity();
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

    /// <summary>Records activity now (bytes sent, a call finished): the idle timeout counts from the latest.</summary>
    public void MarkActivity() => Volatile.Write(ref _lastActivity, _time.GetTimestamp());

    /// <summary>
    /// Closes after a protocol error or too many failed auths, so that the error reply reaches a client that is still
    /// sending: the reply is flushed, the sending side shut (FIN), then whatever the client still sends is read and
    /// discarded — at most 4 × the message limit, for at most the slow-sender timeout, ending early when the client
    /// closes or sends nothing for a second — and only then is the socket closed. Closing at once would make the
    /// kernel answer the unread bytes with a reset, which discards the reply before the client reads it.
    /// </summary>
    private async Task LingerAndCloseAsync(RpcCloseReason reason)
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
            await _sendLoop.WaitAsync(TimeSpan.FromSeconds(2), _time).ConfigureAwait(false);
            _socket.Shutdown(SocketShutdown.Send);
            long left = 4L * _server.Options.Limits.MaxMessageBytes;
            using var overall = new CancellationTokenSource(_server.Options.SlowSenderTimeout, _time);
            while (left > 0)
            {
                using var quiet = new CancellationTokenSource(TimeSpan.FromSeconds(1), _time);
                using var either = CancellationTokenSource.CreateLinkedTokenSource(overall.Token, quiet.Token);
                var result = await _input.ReadAsync(either.Token).ConfigureAwait(false);
                left -= result.Buffer.Length;
                _input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
            // Closing anyway.
        }
        _socket.Dispose();
    }

    // ---------------------------------------------------------------- timeouts and closing

    /// <summary>
    /// Called by the server's heartbeat with <paramref name="now"/> (a <see cref="TimeProvider"/> timestamp):
    /// closes a connection whose incomplete message began more than <see cref="RpcServerOptions.SlowSenderTimeout"/>
    /// ago, or that has had no activity and no running call for <see cref="RpcServerOptions.IdleTimeout"/>.
    /// </summary>
    public void OnHeartbeat(long now)
    {
        if (Volatile.Read(ref _closed) != 0)
        {
            return;
        }
        var options = _server.Options;
        long start = Volatile.Read(ref _messageStart);
        if (start != NoMessage && _time.GetElapsedTime(start, now) > options.SlowSenderTimeout)
        {
            RpcServerLog.SlowSender(_log, Id, options.SlowSenderTimeout.TotalMilliseconds);
            Abort(RpcCloseReason.SlowSender);
            return;
        }
        if (!_dispatcher.IsBusy && start == NoMessage
            && _time.GetElapsedTime(Volatile.Read(ref _lastActivity), now) > options.IdleTimeout)
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
            await _sendLoop.WaitAsync(TimeSpan.FromSeconds(2), _time).ConfigureAwait(false);
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is TimeoutException or SocketException or ObjectDisposedException)
        {
            // Closing anyway.
        }
        _socket.Dispose();
    }
}
