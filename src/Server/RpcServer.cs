using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Server;

/// <summary>
/// A MessagePack-RPC server over TCP. The host registers method handlers; the server owns sockets, framing,
/// limits, authentication, cancellation and shutdown. Handlers run concurrently and replies go out in
/// completion order. Built-in methods: <c>auth {token}</c> (public) and <c>cancel {msgid}</c>.
/// </summary>
/// <remarks>
/// Authentication convention: when <see cref="RpcServerOptions.AuthToken"/> is set, a connection starts
/// unauthenticated; <c>auth {"token": "…"}</c> → <c>true</c> authenticates it, a wrong token → error
/// <c>unauthorized</c> (after <see cref="RpcServerOptions.MaxAuthFailures"/> failures the connection is closed).
/// Every other method except those registered public answers <c>unauthorized</c> until then. Tokens are
/// compared in constant time (SHA-256 digests compared with <see cref="CryptographicOperations.FixedTimeEquals"/>,
/// so not even the length leaks).
/// </remarks>
public sealed class RpcServer : IAsyncDisposable
{
    internal sealed record Registration(Func<RpcCall, CancellationToken, ValueTask<MsgValue>> Handler, bool IsPublic);

    // Method names come from clients; string hashing in .NET is randomized per process, so they cannot collide on purpose.
    private readonly ConcurrentDictionary<string, Registration> _methods = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<long, RpcTransport> _connections = new();
    private readonly byte[]? _tokenDigest;
    private readonly Lock _stateLock = new();
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private ITimer? _heartbeat;
    private Task? _stopTask;
    private IPEndPoint? _localEndPoint;
    private long _nextConnectionId;
    private int _connectionCount;
    private volatile bool _stopping;

    /// <summary>Creates a stopped server.</summary>
    /// <param name="logger">Receives connection, protocol and handler events (stable event ids); null for none.</param>
    /// <exception cref="ArgumentException">Invalid options.</exception>
    public RpcServer(RpcServerOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        Logger = logger ?? NullLogger.Instance;
        _tokenDigest = options.AuthToken is null ? null : SHA256.HashData(Encoding.UTF8.GetBytes(options.AuthToken));
    }

    /// <summary>The settings in force.</summary>
    public RpcServerOptions Options { get; }

    internal ILogger Logger { get; }

    internal bool RequiresAuth => _tokenDigest is not null;

    internal bool IsStopping => _stopping;

    /// <summary>The bound address (with the real port when 0 was asked for).</summary>
    /// <exception cref="InvalidOperationException">Before <see cref="Start"/>.</exception>
    public IPEndPoint LocalEndPoint => _localEndPoint ?? throw new InvalidOperationException("The server is not started.");

    /// <summary>Connections open now.</summary>
    public int ConnectionCount => Volatile.Read(ref _connectionCount);

    /// <summary>
    /// Adds a method. The handler gets the call and a token cancelled by <c>cancel</c>, disconnect or shutdown; it
    /// returns the result, or throws <see cref="Serving.Protocol.Rpc.RpcException"/> for an error reply (any other
    /// exception becomes <c>internal</c> with a generic message and is logged). Public methods work without auth.
    /// May be called before or after <see cref="Start"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Empty or built-in name (<see cref="RpcMethods.Auth"/>, <see cref="RpcMethods.Cancel"/>).</exception>
    /// <exception cref="InvalidOperationException">The method is already registered.</exception>
    public void Register(string method, Func<RpcCall, CancellationToken, ValueTask<MsgValue>> handler, bool isPublic = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(method);
        ArgumentNullException.ThrowIfNull(handler);
        if (method is RpcMethods.Auth or RpcMethods.Cancel)
        {
            throw new ArgumentException($"'{method}' is a built-in method.", nameof(method));
        }
        if (!_methods.TryAdd(method, new Registration(handler, isPublic)))
        {
            throw new InvalidOperationException($"Method '{method}' is already registered.");
        }
    }

    internal bool TryGetMethod(string method, out Registration? registration)
    {
        bool found = _methods.TryGetValue(method, out var r);
        registration = r;
        return found;
    }

    internal bool TokenMatches(string token)
    {
        if (_tokenDigest is null)
        {
            return true;
        }
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(token), digest);
        return CryptographicOperations.FixedTimeEquals(digest, _tokenDigest);
    }

    /// <summary>Binds and starts accepting connections.</summary>
    /// <exception cref="SocketException">The address cannot be bound.</exception>
    /// <exception cref="InvalidOperationException">Already started or stopped.</exception>
    public void Start()
    {
        lock (_stateLock)
        {
            if (_listener is not null || _stopping)
            {
                throw new InvalidOperationException("The server was already started.");
            }
            var listener = new Socket(Options.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                listener.Bind(Options.EndPoint);
                listener.Listen(512);
            }
            catch
            {
                listener.Dispose();
                throw;
            }
            _listener = listener;
            _localEndPoint = (IPEndPoint)listener.LocalEndPoint!;
            // One timer for all connections (as Kestrel's heartbeat) instead of one per connection, on the
            // options' clock so that tests can drive it.
            double shortest = Math.Min(Options.IdleTimeout.TotalMilliseconds, Options.SlowSenderTimeout.TotalMilliseconds);
            var period = TimeSpan.FromMilliseconds(Math.Clamp(shortest / 4, 10, 1000));
            _heartbeat = Options.TimeProvider.CreateTimer(_ => OnHeartbeat(), null, period, period);
            _acceptLoop = AcceptLoopAsync(listener);
        }
        RpcServerLog.Listening(Logger, _localEndPoint);
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (!_stopping)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                if (_stopping)
                {
                    return;
                }
                // Transient (e.g. out of file descriptors): back off briefly instead of spinning.
                RpcServerLog.AcceptFailed(Logger, ex);
                await Task.Delay(TimeSpan.FromMilliseconds(50), Options.TimeProvider).ConfigureAwait(false);
                continue;
            }
            if (_stopping)
            {
                socket.Dispose();
                return;
            }
            if (Interlocked.Increment(ref _connectionCount) > Options.MaxConnections)
            {
                Interlocked.Decrement(ref _connectionCount);
                RpcServerLog.ConnectionRefused(Logger, SafeRemote(socket), Options.MaxConnections);
                socket.Dispose();
                continue;
            }
            RpcTransport connection;
            try
            {
                socket.NoDelay = true;
                connection = new RpcTransport(this, socket, Interlocked.Increment(ref _nextConnectionId));
            }
            catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException)
            {
                // The peer vanished between accept and setup; the accept loop must go on.
                Interlocked.Decrement(ref _connectionCount);
                socket.Dispose();
                continue;
            }
            _connections[connection.Id] = connection;
            RpcServerLog.ConnectionAccepted(Logger, connection.Id, connection.RemoteEndPoint);
            connection.Start();
        }
    }

    internal static EndPoint? SafeRemote(Socket socket)
    {
        try
        {
            return socket.RemoteEndPoint;
        }
        catch (SocketException)
        {
            return null;
        }
    }

    internal void OnConnectionClosed(RpcTransport connection)
    {
        if (_connections.TryRemove(connection.Id, out _))
        {
            Interlocked.Decrement(ref _connectionCount);
        }
    }

    private void OnHeartbeat()
    {
        long now = Options.TimeProvider.GetTimestamp();
        foreach (var connection in _connections.Values)
        {
            connection.OnHeartbeat(now);
        }
    }

    /// <summary>
    /// Graceful stop: stops accepting, answers new requests with <c>unavailable</c>, waits up to
    /// <paramref name="grace"/> for running calls, then cancels them (waiting at most one more second),
    /// then closes every connection after flushing its replies. Safe to call more than once.
    /// </summary>
    public Task StopAsync(TimeSpan grace)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(grace, TimeSpan.Zero);
        lock (_stateLock)
        {
            return _stopTask ??= StopCoreAsync(grace);
        }
    }

    private async Task StopCoreAsync(TimeSpan grace)
    {
        _stopping = true;
        RpcServerLog.Stopping(Logger, grace.TotalMilliseconds);
        _listener?.Dispose();
        await _acceptLoop.ConfigureAwait(false);

        var connections = _connections.Values.ToArray();
        var calls = connections.SelectMany(c => c.Dispatcher.RunningCallTasks()).ToArray();
        if (!await WaitAllAsync(calls, grace).ConfigureAwait(false))
        {
            foreach (var connection in connections)
            {
                connection.Dispatcher.CancelCalls();
            }
            await WaitAllAsync(calls, TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        }

        foreach (var connection in _connections.Values)
        {
            _ = connection.CloseAsync(RpcCloseReason.ServerShutdown);
        }
        await WaitAllAsync(_connections.Values.Select(c => c.Completion).ToArray(), TimeSpan.FromSeconds(5))
            .ConfigureAwait(false);
        if (_heartbeat is not null)
        {
            await _heartbeat.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<bool> WaitAllAsync(Task[] tasks, TimeSpan timeout)
    {
        if (tasks.Length == 0)
        {
            return true;
        }
        try
        {
            await Task.WhenAll(tasks).WaitAsync(timeout, Options.TimeProvider).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
        catch (Exception)
        {
            // Call and connection tasks handle their own failures; a fault here still means "finished".
            return true;
        }
    }

    /// <summary>Stops with no grace period (running calls are cancelled at once).</summary>
    public async ValueTask DisposeAsync() => await StopAsync(TimeSpan.Zero).ConfigureAwait(false);
}
