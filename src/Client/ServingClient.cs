using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Client;

/// <summary>
/// A client of the Serving MessagePack-RPC endpoint (docs/rpc.md) over one TCP connection. Calls may be made
/// concurrently from any thread: requests are written one frame at a time under a writer lock, and one
/// background reader matches replies to calls by msgid (the server answers in completion order, not request
/// order) and routes <c>generate.token</c> notifications to their stream.
/// </summary>
/// <remarks>
/// <para><b>Errors.</b> An error reply throws <see cref="RpcException"/> and leaves the connection usable.
/// A lost connection (server gone, reset, or a malformed message from the server, which a MessagePack stream
/// cannot recover from) faults every pending call and stream with an <see cref="IOException"/> saying so, and
/// every later call throws the same kind at once; connect again to continue. Calls pending when the client is
/// disposed fail with <see cref="ObjectDisposedException"/>.</para>
/// <para><b>Cancellation.</b> Cancelling a call's token ends it at once with <see cref="OperationCanceledException"/>
/// and sends the notification <c>cancel {msgid}</c>, so the server stops the work and frees its KV blocks; the
/// late reply is discarded. (A final event with finish reason "cancelled" is only seen when the server cancels
/// on its own, e.g. while shutting down.)</para>
/// <para><b>Memory.</b> Incoming messages are capped by <see cref="ServingClientOptions.Limits"/>; each stream
/// buffers at most <see cref="ServingClientOptions.MaxBufferedStreamEvents"/> unread events.</para>
/// </remarks>
public sealed partial class ServingClient : IAsyncDisposable
{
    private const int ReadBufferBytes = 64 * 1024;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly ServingClientOptions _options;
    private readonly string _remote;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Lock _pendingLock = new();
    private readonly Dictionary<uint, PendingCall> _pending = []; // msgid → call awaiting its reply; guarded by _pendingLock
    private readonly CancellationTokenSource _lifetime = new();
    private readonly Task _readLoop;
    private uint _lastId;          // guarded by _pendingLock
    private Exception? _closed;    // why the connection ended; set once, guarded by _pendingLock
    private int _disposed;

    private ServingClient(Socket socket, ServingClientOptions options, string remote)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _options = options;
        _remote = remote;
        _readLoop = Task.Run(ReadLoopAsync);
    }

    /// <summary>The server's address as given to <c>ConnectAsync</c> (host:port).</summary>
    public string Remote => _remote;

    /// <summary>False once the connection is lost or the client disposed.</summary>
    public bool IsConnected => Volatile.Read(ref _closed) is null;

    /// <summary>Calls sent whose replies have not arrived yet (abandoned ones included until their reply comes).</summary>
    public int PendingCalls
    {
        get
        {
            lock (_pendingLock) return _pending.Count;
        }
    }

    /// <summary>
    /// Connects to <paramref name="host"/>:<paramref name="port"/> and, when <paramref name="token"/> is given,
    /// authenticates with <c>auth {token}</c>.
    /// </summary>
    /// <exception cref="SocketException">The server cannot be reached.</exception>
    /// <exception cref="RpcException">unauthorized: the token is wrong.</exception>
    /// <exception cref="TimeoutException">Connecting and authenticating took longer than the default connect timeout (10 s).</exception>
    public static Task<ServingClient> ConnectAsync(string host, int port, string? token = null, CancellationToken ct = default) =>
        ConnectAsync(host, port, new ServingClientOptions { Token = token }, ct);

    /// <summary>Connects with explicit <paramref name="options"/> (token, timeouts, limits).</summary>
    /// <exception cref="ArgumentException">Bad host, port or options.</exception>
    /// <exception cref="SocketException">The server cannot be reached.</exception>
    /// <exception cref="RpcException">unauthorized: the token is wrong.</exception>
    /// <exception cref="TimeoutException">Connecting and authenticating took longer than <see cref="ServingClientOptions.ConnectTimeout"/>.</exception>
    public static async Task<ServingClient> ConnectAsync(string host, int port, ServingClientOptions options, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(options.ConnectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true }; // small frames: never wait for Nagle
        ServingClient? client = null;
        try
        {
            await socket.ConnectAsync(host, port, deadline.Token).ConfigureAwait(false);
            client = new ServingClient(socket, options, $"{host}:{port}");
            if (options.Token is not null)
            {
                await client.CallAsync(RpcMethods.Auth, MsgValue.Map((RpcFields.Token, options.Token)), deadline.Token).ConfigureAwait(false);
            }
            return client;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            await CloseAsync(client, socket).ConfigureAwait(false);
            throw new TimeoutException($"connecting to {host}:{port} took longer than {options.ConnectTimeout.TotalSeconds:0.#} s");
        }
        catch
        {
            await CloseAsync(client, socket).ConfigureAwait(false);
            throw;
        }

        static async ValueTask CloseAsync(ServingClient? client, Socket socket)
        {
            if (client is not null) await client.DisposeAsync().ConfigureAwait(false);
            else socket.Dispose();
        }
    }

    /// <summary>
    /// Calls any method with named arguments (<paramref name="args"/> a map, or nil for none) and returns its raw
    /// result. The typed methods are built on this; use it for methods they do not cover.
    /// </summary>
    /// <exception cref="RpcException">The server's error reply.</exception>
    /// <exception cref="IOException">The connection is lost.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled (the server was told to cancel).</exception>
    public async Task<MsgValue> CallAsync(string method, MsgValue args, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(method);
        if (!args.IsNil && args.Kind != MsgValueKind.Map)
            throw new ArgumentException("args must be a map of named arguments (or nil)", nameof(args));
        var call = new UnaryCall();
        uint id = await StartAsync(method, args.IsNil ? MsgValue.EmptyMap : args, call, ct).ConfigureAwait(false);
        try
        {
            return await call.Task.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            Abandon(id, call);
            throw;
        }
    }

    /// <summary>
    /// Starts <c>generate</c> with <c>stream: true</c> and yields an event per streamed token, then one final event
    /// holding the result (<see cref="GenerateEvent.IsFinal"/>). Leaving the loop early, or cancelling
    /// <paramref name="ct"/>, cancels the request on the server.
    /// </summary>
    /// <exception cref="RpcException">The server refused or failed the request.</exception>
    /// <exception cref="IOException">The connection is lost.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled.</exception>
    /// <exception cref="StreamOverflowException">The consumer fell too far behind (see <see cref="ServingClientOptions.MaxBufferedStreamEvents"/>).</exception>
    public async IAsyncEnumerable<GenerateEvent> GenerateStreamAsync(GenerateOptions options,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var call = new StreamCall(this, _options.MaxBufferedStreamEvents);
        uint id = await StartAsync(RpcMethods.Generate, options.ToArgs(stream: true), call, ct).ConfigureAwait(false);
        bool finished = false;
        try
        {
            await foreach (var e in call.Events.ReadAllAsync(ct).ConfigureAwait(false))
            {
                // ReadAllAsync drains what is already buffered without looking at the token again: once the caller
                // cancels, no further event is handed out, however many arrived before the cancel.
                ct.ThrowIfCancellationRequested();
                call.OnConsumed();
                finished = e.IsFinal;
                yield return e;
            }
        }
        finally
        {
            if (!finished) Abandon(id, call);
        }
    }

    /// <summary>Runs <c>generate</c> without streaming and returns the result.</summary>
    /// <exception cref="RpcException">The server refused or failed the request (bad_request, overloaded, context_exceeded, …).</exception>
    /// <exception cref="IOException">The connection is lost.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled (the server was told to cancel).</exception>
    public async Task<GenerateResult> GenerateAsync(GenerateOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        return ParseGenerateResult(await CallAsync(RpcMethods.Generate, options.ToArgs(stream: false), ct).ConfigureAwait(false));
    }

    /// <summary>Closes the connection. Pending calls fail with <see cref="ObjectDisposedException"/>; server-side work of a closed connection is cancelled by the server.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Close(new ObjectDisposedException(nameof(ServingClient), "The client was disposed."));
        _lifetime.Cancel();
        try
        {
            await _readLoop.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The loop records its own failure in Close; nothing is left to report here.
        }
        // _lifetime is not disposed: a cancel notification still being sent may read its token.
        await _stream.DisposeAsync().ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ sending

    private async ValueTask<uint> StartAsync(string method, MsgValue args, PendingCall call, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        uint id;
        lock (_pendingLock)
        {
            if (_closed is not null) throw ClosedError(_closed);
            // msgids wrap after 2^32 calls; one still in flight is skipped so replies stay unambiguous.
            do id = unchecked(++_lastId); while (_pending.ContainsKey(id));
            call.Id = id;
            _pending.Add(id, call);
        }
        var frame = new ArrayBufferWriter<byte>(256);
        RpcMessage.WriteRequest(frame, id, method, args);
        try
        {
            await WriteFrameAsync(frame.WrittenMemory, ct).ConfigureAwait(false);
        }
        catch
        {
            lock (_pendingLock) _pending.Remove(id);
            throw;
        }
        return id;
    }

    private async ValueTask WriteFrameAsync(ReadOnlyMemory<byte> frame, CancellationToken ct)
    {
        // Waiting for the lock may be cancelled (nothing is written yet); the write itself may not: half a frame
        // would corrupt the stream for every other call.
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (Volatile.Read(ref _closed) is { } closed) throw ClosedError(closed);
            try
            {
                await _stream.WriteAsync(frame, _lifetime.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
            {
                Close(new IOException($"The connection to {_remote} was lost while sending: {e.Message}", e));
                throw ClosedError(Volatile.Read(ref _closed)!);
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Gives up on a call the caller no longer waits for: tells the server to cancel it (a notification, so no
    /// reply is expected) and lets the reader drop its late reply. The msgid stays reserved until that reply.
    /// </summary>
    private void Abandon(uint id, PendingCall call)
    {
        if (!call.Abandon()) return; // already given up (e.g. overflowed, then disposed by the consumer)
        bool stillPending;
        lock (_pendingLock) stillPending = _pending.TryGetValue(id, out var p) && ReferenceEquals(p, call);
        if (stillPending) _ = SendCancelAsync(id);
    }

    private async Task SendCancelAsync(uint id)
    {
        try
        {
            var frame = new ArrayBufferWriter<byte>(32);
            RpcMessage.WriteNotification(frame, RpcMethods.Cancel, MsgValue.Map((RpcFields.MsgId, (long)id)));
            await WriteFrameAsync(frame.WrittenMemory, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The connection is gone, and with it the server-side work (the server cancels a closed connection's calls).
        }
    }

    // ------------------------------------------------------------------ receiving

    private async Task ReadLoopAsync()
    {
        var input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: ReadBufferBytes, leaveOpen: true));
        var messages = new MsgPackMessageReader(input, _options.Limits);
        Exception reason;
        try
        {
            while (true)
            {
                if (await messages.ReadAsync(static frame => RpcMessage.Parse(frame), _lifetime.Token).ConfigureAwait(false) is not { } message)
                {
                    reason = new IOException($"The connection to {_remote} was closed by the server.");
                    break;
                }
                // Taken per message as it is framed: messages that arrived in one read differ by microseconds.
                Dispatch(message, Stopwatch.GetTimestamp());
            }
        }
        catch (RpcException e) when (e.IsProtocolError)
        {
            reason = new IOException($"The connection to {_remote} was closed: the server sent a malformed message ({e.Message}).", e);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            reason = new IOException($"The connection to {_remote} was lost: {e.Message}", e);
        }
        finally
        {
            await input.CompleteAsync().ConfigureAwait(false);
        }
        Close(reason);
    }

    private void Dispatch(RpcMessage m, long timestamp)
    {
        switch (m.Type)
        {
            case RpcMessageType.Response:
            {
                PendingCall? call;
                lock (_pendingLock) _pending.Remove(m.MessageId, out call);
                call?.OnReply(m.Error, m.Result, timestamp); // a reply to no call (already closed) is dropped
                break;
            }
            case RpcMessageType.Notification when m.Method == RpcMethods.GenerateToken:
            {
                var (id, tokenId, text) = ReadToken(m.Params);
                PendingCall? call;
                lock (_pendingLock) _pending.TryGetValue(id, out call);
                call?.OnToken(tokenId, text, timestamp);
                break;
            }
            default:
                // Other notifications (none defined yet) and server-sent requests have no meaning for this client.
                break;
        }
    }

    private static (uint Id, int TokenId, string Text) ReadToken(MsgValue @params)
    {
        // The server's own token stream is malformed: treated like any malformed message (the connection ends),
        // because a stream with a silently dropped token would be wrong without anyone knowing.
        try
        {
            var args = new ReplyReader(RpcArgs.FromParams(@params).Map, RpcMethods.GenerateToken);
            long id = args.Int64(RpcFields.Id);
            long token = args.Int64(RpcFields.Token);
            if (id is < 0 or > uint.MaxValue || token is < -1 or > int.MaxValue)
                throw new InvalidDataException("id or token out of range");
            return ((uint)id, (int)token, args.String(RpcFields.Text));
        }
        catch (Exception e) when (e is RpcException or InvalidDataException)
        {
            throw RpcException.Protocol(RpcProtocolFault.InvalidMessage, $"malformed {RpcMethods.GenerateToken} notification: {e.Message}");
        }
    }

    /// <summary>Ends the connection once: records why, fails every pending call, closes the socket.</summary>
    private void Close(Exception reason)
    {
        PendingCall[] calls;
        lock (_pendingLock)
        {
            if (_closed is not null) return;
            _closed = reason;
            calls = [.. _pending.Values];
            _pending.Clear();
        }
        foreach (var call in calls) call.OnClosed(ClosedError(reason));
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already reset by the peer.
        }
        _socket.Dispose();
    }

    // A fresh exception per caller, so stack traces of different calls do not pile onto one object.
    private static Exception ClosedError(Exception reason) => reason is ObjectDisposedException
        ? new ObjectDisposedException(nameof(ServingClient), reason.Message)
        : new IOException(reason.Message, reason);

    // ------------------------------------------------------------------ calls in flight

    /// <summary>A call awaiting its reply. Callbacks run on the reader loop and must never block it.</summary>
    private abstract class PendingCall
    {
        private int _abandoned;

        /// <summary>The call's msgid (set before its request is written, so early notifications find it).</summary>
        public uint Id { get; set; }

        protected bool Abandoned => Volatile.Read(ref _abandoned) != 0;

        /// <summary>Marks the call abandoned; true the first time only.</summary>
        public bool Abandon() => Interlocked.Exchange(ref _abandoned, 1) == 0;

        public abstract void OnReply(MsgValue error, MsgValue result, long timestamp);

        public virtual void OnToken(int tokenId, string text, long timestamp)
        {
            // Only streams take tokens; one aimed at another call is ignored.
        }

        public abstract void OnClosed(Exception error);
    }

    private sealed class UnaryCall : PendingCall
    {
        // Continuations run elsewhere, so a caller's code never runs on (and stalls) the reader loop.
        private readonly TaskCompletionSource<MsgValue> _reply = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<MsgValue> Task => _reply.Task;

        public override void OnReply(MsgValue error, MsgValue result, long timestamp)
        {
            if (error.IsNil) _reply.TrySetResult(result);
            else _reply.TrySetException(RpcException.FromMsgValue(error));
        }

        public override void OnClosed(Exception error) => _reply.TrySetException(error);
    }

    private sealed class StreamCall(ServingClient client, int capacity) : PendingCall
    {
        // Unbounded as a channel, bounded by the count below: the reader loop must never wait on a consumer.
        private readonly Channel<GenerateEvent> _events = Channel.CreateUnbounded<GenerateEvent>(
            new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        private int _buffered;

        public ChannelReader<GenerateEvent> Events => _events.Reader;

        public void OnConsumed() => Interlocked.Decrement(ref _buffered);

        public override void OnToken(int tokenId, string text, long timestamp)
        {
            if (Abandoned) return;
            if (Interlocked.Increment(ref _buffered) > capacity)
            {
                if (_events.Writer.TryComplete(new StreamOverflowException(
                        $"the stream's consumer fell more than {capacity} events behind; the request was cancelled")))
                {
                    client.Abandon(Id, this);
                }
                return;
            }
            _events.Writer.TryWrite(new GenerateEvent(tokenId, text, null, timestamp));
        }

        public override void OnReply(MsgValue error, MsgValue result, long timestamp)
        {
            if (!error.IsNil)
            {
                _events.Writer.TryComplete(RpcException.FromMsgValue(error));
                return;
            }
            try
            {
                // The final event is always accepted: it is what ends the stream.
                _events.Writer.TryWrite(new GenerateEvent(-1, "", ParseGenerateResult(result), timestamp));
                _events.Writer.TryComplete();
            }
            catch (InvalidDataException e)
            {
                _events.Writer.TryComplete(e);
            }
        }

        public override void OnClosed(Exception error) => _events.Writer.TryComplete(error);
    }
}
