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
    private int _closed;

    public RpcTransport(RpcServer server, Socket socket, long id)
    {
        _server = server;
        _socket = socket;
        _log = server.Logger;
        _time = server.Options.TimeProvider;
        Id = id;
        RemoteEndPoint = RpcServer.SafeRemote(socket);
        _input = PipeReader.Create(new NetworkStream(socket, ownsSocket: false),
            new StreamPipeReaderOptions(bufferSize: 16 * 1024, leaveOpen: true));
        _lastActivity = _time.GetTimestamp();
        _dispatcher = new RpcDispatcher(server, this);
    }

    /// <summary>Server-unique id of the connection.</summary>
    public long Id { get; }

    /// <summary>The client's address.</summary>
    public EndPoint? RemoteEndPoint { get; }

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
        await CloseAsync(reason).ConfigureAwait(false);
        await _sendLoop.ConfigureAwait(false);
        await _input.CompleteAsync().ConfigureAwait(false);
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
