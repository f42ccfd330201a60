using System.Net;
using Serving.Protocol.MessagePack;

namespace Serving.Server;

/// <summary>Settings of an <see cref="RpcServer"/>. Defaults are safe for a local server.</summary>
public sealed record RpcServerOptions
{
    /// <summary>Where to listen. Default 127.0.0.1 port 0 (an ephemeral port; see <see cref="RpcServer.LocalEndPoint"/>).</summary>
    public IPEndPoint EndPoint { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>Limits on every incoming message (size, depth, str/bin/array/map sizes, total elements).</summary>
    public MsgPackLimits Limits { get; init; } = MsgPackLimits.Default;

    /// <summary>Most requests one connection may have running at once; beyond it requests get <c>overloaded</c>.</summary>
    public int MaxInFlightPerConnection { get; init; } = 64;

    /// <summary>
    /// Most open connections. When they are all taken, a new client gets the slot of an idle connection (one with no
    /// call running and no message arriving: the longest idle of the address holding the most connections, as long as
    /// that address holds more than the newcomer's would), or waits up to <see cref="AdmissionWait"/> for one.
    /// </summary>
    public int MaxConnections { get; init; } = 256;

    /// <summary>
    /// Most open connections from one address (an IPv4 address, or an IPv6 /64). A client beyond it gets the slot of
    /// its own address's longest idle connection, or waits up to <see cref="AdmissionWait"/> for one.
    /// </summary>
    public int MaxConnectionsPerAddress { get; init; } = 64;

    /// <summary>
    /// How long a new connection may wait for a slot when none can be reclaimed now (every connection busy); after
    /// it the connection is closed. At most 64 connections wait at once (4 per address); more are closed at once.
    /// </summary>
    public TimeSpan AdmissionWait { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The memory budget for work in flight, in bytes: incomplete messages being received, decoded requests whose
    /// calls run (charged from their size and value count before they are decoded), what handlers reserve
    /// (<see cref="RpcCall.Reserve"/>) and replies not yet taken by their sockets. A request that does not fit gets
    /// <c>overloaded</c> (retriable) at once. Default 128 MiB; at least 8 × <see cref="MsgPackLimits.MaxMessageBytes"/>
    /// (a message is charged about four times its size while it is decoded, and two of the largest must fit).
    /// </summary>
    public long MaxWorkBytes { get; init; } = 128L << 20;

    /// <summary>
    /// After a burst whose work peaked at this many bytes or more, once work in flight has fallen back under a quarter
    /// of it for a heartbeat, the server runs one compacting, decommitting garbage collection so the process gives the
    /// memory back to the system (at most once per 10 s). 0 turns it off. Default 32 MiB.
    /// </summary>
    public long CompactAfterWorkBytes { get; init; } = 32L << 20;

    /// <summary>A connection with no bytes received and no request running for this long is closed.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>A message whose first byte arrived this long ago but which is still incomplete closes the connection.</summary>
    public TimeSpan SlowSenderTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Most reply bytes queued for a connection but not yet taken by its socket. A client that stops reading
    /// makes this grow; past it the connection is closed, so memory per connection stays bounded.
    /// </summary>
    public long MaxPendingWriteBytes { get; init; } = 16L << 20;

    /// <summary>
    /// Shared secret; when set, a connection must call <c>auth {"token": …}</c> before any non-public method.
    /// Null (default) disables authentication.
    /// </summary>
    public string? AuthToken { get; init; }

    /// <summary>Failed <c>auth</c> attempts allowed per connection before it is closed (slows guessing).</summary>
    public int MaxAuthFailures { get; init; } = 3;

    /// <summary>Wrong tokens one address may send before its auth attempts are spaced out (see <see cref="AuthBackoff"/>).</summary>
    public int AuthFreeFailures { get; init; } = 5;

    /// <summary>
    /// Spacing of an address's auth attempts once it has used its free failures: each attempt waits its turn before the
    /// token is checked; the spacing doubles with every further failure up to <see cref="AuthBackoffMax"/>. Default 250 ms.
    /// </summary>
    public TimeSpan AuthBackoff { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Largest spacing of an address's auth attempts (default 5 s); an attempt whose turn is more than twice this
    /// away is refused unchecked with <c>unauthorized</c> and <c>data: {retry_after_s}</c>.</summary>
    public TimeSpan AuthBackoffMax { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>An address with no failed auth for this long starts afresh (default 10 minutes).</summary>
    public TimeSpan AuthFailureMemory { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// The clock of every server timeout (idle, slow sender, close and shutdown waits) and of the heartbeat that
    /// checks them. Default <see cref="TimeProvider.System"/>; tests pass a fake clock to run timeouts without
    /// waiting for them.
    /// </summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>The smallest <see cref="MaxWorkBytes"/> allowed with <paramref name="limits"/>: 8 × the largest message.</summary>
    public static long MinWorkBytes(MsgPackLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        return 8L * limits.MaxMessageBytes;
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a non-positive limit or timeout.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(EndPoint);
        ArgumentNullException.ThrowIfNull(Limits);
        ArgumentNullException.ThrowIfNull(TimeProvider);
        Limits.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxInFlightPerConnection, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConnections, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConnectionsPerAddress, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(AdmissionWait, TimeSpan.Zero);
        if (MaxWorkBytes < MinWorkBytes(Limits))
        {
            throw new ArgumentOutOfRangeException(nameof(MaxWorkBytes), MaxWorkBytes,
                $"the work budget must hold two messages of the largest size as they are decoded ({MinWorkBytes(Limits)} bytes)");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(CompactAfterWorkBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(AuthFreeFailures);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(AuthBackoff, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(AuthBackoffMax, AuthBackoff);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(AuthFailureMemory, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(IdleTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(SlowSenderTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPendingWriteBytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxAuthFailures, 1);
        if (AuthToken is { Length: 0 })
        {
            throw new ArgumentException("AuthToken must be null (no auth) or non-empty.", nameof(AuthToken));
        }
    }
}
