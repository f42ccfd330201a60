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

    /// <summary>Most open connections; a connection beyond it is accepted and closed at once.</summary>
    public int MaxConnections { get; init; } = 256;

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

    /// <summary>
    /// The clock of every server timeout (idle, slow sender, close and shutdown waits) and of the heartbeat that
    /// checks them. Default <see cref="TimeProvider.System"/>; tests pass a fake clock to run timeouts without
    /// waiting for them.
    /// </summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a non-positive limit or timeout.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(EndPoint);
        ArgumentNullException.ThrowIfNull(Limits);
        ArgumentNullException.ThrowIfNull(TimeProvider);
        Limits.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxInFlightPerConnection, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConnections, 1);
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
