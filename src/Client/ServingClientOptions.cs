using Serving.Protocol.MessagePack;

namespace Serving.Client;

/// <summary>Settings of a <see cref="ServingClient"/>. The defaults suit a server on the same machine or LAN.</summary>
public sealed record ServingClientOptions
{
    /// <summary>
    /// Shared secret sent with <c>auth {token}</c> right after connecting; null (default) when the server needs none.
    /// </summary>
    public string? Token { get; init; }

    /// <summary>How long <c>ConnectAsync</c> may take (TCP connect plus auth). Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Limits on every message the server sends (a reply larger than this closes the connection: a MessagePack
    /// stream cannot be resynchronized). Default: 16 MiB messages, otherwise <see cref="MsgPackLimits.Default"/>.
    /// </summary>
    public MsgPackLimits Limits { get; init; } = MsgPackLimits.Default with { MaxMessageBytes = 16 << 20 };

    /// <summary>
    /// Most streamed events one <see cref="ServingClient.GenerateStreamAsync"/> may hold that its consumer has not
    /// read yet. Events are buffered per stream so a slow consumer never stalls the other calls on the
    /// connection; past this bound the stream fails with <see cref="StreamOverflowException"/> and its request is
    /// cancelled on the server. Default 65 536 (more than any context the server allows).
    /// </summary>
    public int MaxBufferedStreamEvents { get; init; } = 65_536;

    /// <summary>Throws <see cref="ArgumentException"/> for a bad setting.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ConnectTimeout, TimeSpan.Zero);
        ArgumentNullException.ThrowIfNull(Limits);
        Limits.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBufferedStreamEvents, 1);
        if (Token is { Length: 0 })
        {
            throw new ArgumentException("Token must be null (no auth) or non-empty.", nameof(Token));
        }
    }
}

/// <summary>
/// A generation stream's consumer fell more than <see cref="ServingClientOptions.MaxBufferedStreamEvents"/>
/// events behind; the stream was ended and its request cancelled on the server. Other calls are unaffected.
/// </summary>
public sealed class StreamOverflowException(string message) : Exception(message);
