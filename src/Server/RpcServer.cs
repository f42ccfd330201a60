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
    private volatile bool _stopping;

    // Admission: slots per address and in all, under _admissionLock. Waiting newcomers are woken by _slotChanged.
    private const int MaxWaitingConnections = 64, MaxWaitingPerAddress = 4;
    private readonly Lock _admissionLock = new();
    private readonly Dictionary<AddressKey, AddressSlots> _addresses = [];
    private int _connectionCount, _waitingCount;
    private TaskCompletionSource? _slotChanged;
    private long _accepted, _refused, _reclaimed, _compactions;
    private long _lastCompaction = long.MinValue;
    private int _quietBeats;

    private sealed class AddressSlots
    {
        public int Connections;
        public int Waiting;
    }

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
        Work = new WorkBudget(options.MaxWorkBytes);
        Auth = new AuthThrottle(options);
    }

    /// <summary>The memory budget for work in flight.</summary>
    internal WorkBudget Work { get; }

    /// <summary>The per-address back-off of failed authentications.</summary>
    internal AuthThrottle Auth { get; }

    /// <summary>Counters and gauges of connections, auth and the work budget.</summary>
    public RpcServerMetrics GetMetrics() => new(
        ConnectionCount, Interlocked.Read(ref _accepted), Interlocked.Read(ref _refused), Interlocked.Read(ref _reclaimed),
        Volatile.Read(ref _waitingCount), Auth.Failures, Auth.Delayed, Auth.Refused,
        Work.UsedBytes, Work.LimitBytes, Work.PeakBytes, Work.Refused, Interlocked.Read(ref _compactions), Work.Collections);

    /// <summary>The settings in force.</summary>
    public RpcServerOptions Options { get; }

    internal ILogger Logger { get; }

    internal bool RequiresAuth => _tokenDigest is not null;

    internal bool IsStopping => _stopping;

    /// <summary>The bound address (with the real port when 0 was asked for).</summary>
    /// <exception cref="InvalidOperationException">Before <see cref="Start"/>.</exception>
    public IPEndPoint LocalEndPoint => _localEndPoint ?? throw new InvalidOperationException("The server is not started.");

    /// <summary>Connections holding a slot now.</summary>
    public int ConnectionCount
    {
        get
        {
            lock (_admissionLock)
            {
                return _connectionCount;
            }
        }
    }

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
            var remote = SafeRemote(socket);
            var address = AddressKey.Of(remote);
            switch (TryAdmit(address, waiting: false))
            {
                case Admission.Admitted:
                    StartConnection(socket, address, remote);
                    break;
                case Admission.Wait:
                    _ = AdmitLaterAsync(socket, address, remote);
                    break;
                default:
                    Refuse(socket, address, remote);
                    break;
            }
        }
    }

    private enum Admission { Admitted, Wait, Refused }

    /// <summary>
    /// Takes a slot for a newcomer from <paramref name="address"/>: a free one, else the slot of an idle connection
    /// (closed here: its own address's longest idle when the address is at its limit; otherwise the longest idle of the
    /// address holding the most connections, if that is the newcomer's own or holds more than the newcomer's would),
    /// else Wait when the newcomer may wait (a place in the bounded waiting line; <paramref name="waiting"/>: it already
    /// has one).
    /// </summary>
    private Admission TryAdmit(AddressKey address, bool waiting)
    {
        RpcTransport? victim = null;
        Admission result;
        lock (_admissionLock)
        {
            if (!_addresses.TryGetValue(address, out var slots))
            {
                _addresses[address] = slots = new AddressSlots();
            }
            bool addressFull = slots.Connections >= Options.MaxConnectionsPerAddress;
            bool serverFull = _connectionCount >= Options.MaxConnections;
            if (addressFull || serverFull)
            {
                victim = FindIdleVictim(address, addressFull ? slots.Connections : slots.Connections + 1, sameAddressOnly: addressFull);
            }
            if (!(addressFull || serverFull) || victim is not null)
            {
                if (victim is not null)
                {
                    ReleaseSlotLocked(victim);
                    Interlocked.Increment(ref _reclaimed);
                }
                slots.Connections++;
                _connectionCount++;
                if (waiting)
                {
                    slots.Waiting--;
                    _waitingCount--;
                }
                result = Admission.Admitted;
            }
            else if (waiting)
            {
                result = Admission.Wait;
            }
            else if (_waitingCount < MaxWaitingConnections && slots.Waiting < MaxWaitingPerAddress && Options.AdmissionWait > TimeSpan.Zero)
            {
                slots.Waiting++;
                _waitingCount++;
                result = Admission.Wait;
            }
            else
            {
                ForgetIfUnusedLocked(address, slots);
                result = Admission.Refused;
            }
        }
        if (victim is not null)
        {
            RpcServerLog.ConnectionReclaimed(Logger, victim.Id, victim.RemoteEndPoint);
            _ = victim.CloseAsync(RpcCloseReason.Reclaimed);
        }
        return result;
    }

    /// <summary>
    /// An idle connection whose slot may go to a newcomer (under _admissionLock): of <paramref name="address"/> only, or of
    /// that address or any holding at least <paramref name="atLeast"/> connections (taking from a lighter address would
    /// not be fair), preferring the address holding the most, then the longest idle. The one returned is marked
    /// reclaimed, so it can no longer start a call.
    /// </summary>
    private RpcTransport? FindIdleVictim(AddressKey address, int atLeast, bool sameAddressOnly)
    {
        while (true)
        {
            RpcTransport? best = null;
            int bestCount = 0;
            long bestActivity = 0;
            foreach (var c in _connections.Values)
            {
                bool own = c.Address == address;
                if (c.SlotReleased || !c.IsIdle || (sameAddressOnly && !own))
                {
                    continue;
                }
                int count = _addresses.TryGetValue(c.Address, out var s) ? s.Connections : 0;
                if (count < atLeast && !own)
                {
                    continue;
                }
                long activity = c.LastActivity;
                if (best is null || count > bestCount || (count == bestCount && activity < bestActivity))
                {
                    (best, bestCount, bestActivity) = (c, count, activity);
                }
            }
            if (best is null || best.TryMarkReclaimed())
            {
                return best;
            }
            // It started a call just now; look again.
        }
    }

    private void StartConnection(Socket socket, AddressKey address, EndPoint? remote)
    {
        RpcTransport connection;
        try
        {
            socket.NoDelay = true;
            connection = new RpcTransport(this, socket, Interlocked.Increment(ref _nextConnectionId), address, remote);
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException)
        {
            // The peer vanished between accept and setup; the accept loop must go on.
            lock (_admissionLock)
            {
                _connectionCount--;
                if (_addresses.TryGetValue(address, out var slots))
                {
                    slots.Connections--;
                    ForgetIfUnusedLocked(address, slots);
                }
            }
            socket.Dispose();
            return;
        }
        Interlocked.Increment(ref _accepted);
        _connections[connection.Id] = connection;
        RpcServerLog.ConnectionAccepted(Logger, connection.Id, connection.RemoteEndPoint);
        connection.Start();
    }

    /// <summary>A newcomer that found every slot busy waits for one (a call ending, a connection closing) up to <see cref="RpcServerOptions.AdmissionWait"/>.</summary>
    private async Task AdmitLaterAsync(Socket socket, AddressKey address, EndPoint? remote)
    {
        long start = Options.TimeProvider.GetTimestamp();
        try
        {
            while (!_stopping)
            {
                Task changed = SlotChanged();
                if (TryAdmit(address, waiting: true) == Admission.Admitted)
                {
                    StartConnection(socket, address, remote);
                    return;
                }
                TimeSpan left = Options.AdmissionWait - Options.TimeProvider.GetElapsedTime(start);
                if (left <= TimeSpan.Zero)
                {
                    break;
                }
                try
                {
                    await changed.WaitAsync(left, Options.TimeProvider).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The server stopped under it.
        }
        lock (_admissionLock)
        {
            if (_addresses.TryGetValue(address, out var slots))
            {
                slots.Waiting--;
                ForgetIfUnusedLocked(address, slots);
            }
            _waitingCount--;
        }
        Refuse(socket, address, remote);
    }

    private void Refuse(Socket socket, AddressKey address, EndPoint? remote)
    {
        Interlocked.Increment(ref _refused);
        RpcServerLog.ConnectionRefused(Logger, remote, address.ToString(), Options.MaxConnections, Options.MaxConnectionsPerAddress);
        socket.Dispose();
    }

    private Task SlotChanged()
    {
        lock (_admissionLock)
        {
            return (_slotChanged ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
    }

    /// <summary>Wakes waiting newcomers: a slot was freed or a connection may have become idle.</summary>
    internal void OnSlotMayBeFree()
    {
        if (Volatile.Read(ref _waitingCount) == 0)
        {
            return;
        }
        TaskCompletionSource? changed;
        lock (_admissionLock)
        {
            changed = _slotChanged;
            _slotChanged = null;
        }
        changed?.TrySetResult();
    }

    private void ReleaseSlotLocked(RpcTransport connection)
    {
        if (!connection.TryReleaseSlot())
        {
            return;
        }
        _connectionCount--;
        if (_addresses.TryGetValue(connection.Address, out var slots))
        {
            slots.Connections--;
            ForgetIfUnusedLocked(connection.Address, slots);
        }
    }

    private void ForgetIfUnusedLocked(AddressKey address, AddressSlots slots)
    {
        if (slots.Connections <= 0 && slots.Waiting <= 0)
        {
            _addresses.Remove(address);
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
        _connections.TryRemove(connection.Id, out _);
        lock (_admissionLock)
        {
            ReleaseSlotLocked(connection);
        }
        OnSlotMayBeFree();
    }

    private void OnHeartbeat()
    {
        long now = Options.TimeProvider.GetTimestamp();
        foreach (var connection in _connections.Values)
        {
            connection.OnHeartbeat(now);
        }
        Auth.Prune(now);
        MaybeCompact(now);
    }

    /// <summary>
    /// After a burst of work (peak ≥ <see cref="RpcServerOptions.CompactAfterWorkBytes"/>) has ended — work in flight
    /// under a quarter of that on two heartbeats in a row — runs one blocking, compacting, decommitting collection on the
    /// thread pool, so the memory the burst took goes back to the system instead of staying in the process's heaps.
    /// </summary>
    private void MaybeCompact(long now)
    {
        long threshold = Options.CompactAfterWorkBytes;
        if (threshold == 0 || Work.PeakBytes < threshold)
        {
            return;
        }
        if (Work.UsedBytes > threshold / 4)
        {
            _quietBeats = 0;
            return;
        }
        if (++_quietBeats < 2 || (_lastCompaction != long.MinValue && Options.TimeProvider.GetElapsedTime(_lastCompaction, now) < TimeSpan.FromSeconds(10)))
        {
            return;
        }
        _quietBeats = 0;
        _lastCompaction = now;
        Work.TakePeak();
        Interlocked.Increment(ref _compactions);
        ThreadPool.UnsafeQueueUserWorkItem(static _ => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true), null);
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

        OnSlotMayBeFree(); // waiting newcomers see _stopping and are closed
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
