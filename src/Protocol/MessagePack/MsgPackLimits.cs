using MessagePack;

namespace Serving.Protocol.MessagePack;

/// <summary>
/// Caps applied while reading untrusted MessagePack. Every declared size is checked against these (and against
/// the bytes actually present) before anything is allocated. The total-elements cap bounds the decoded object
/// graph: one input byte can become one 24-byte <see cref="MsgValue"/>, so it is what keeps memory proportional.
/// The depth limit is enforced through <see cref="MessagePackSecurity.UntrustedData"/> with
/// <see cref="MessagePackSecurity.MaximumObjectGraphDepth"/> set to <see cref="MaxDepth"/>.
/// </summary>
public sealed record MsgPackLimits
{
    /// <summary>Defaults suited to RPC requests: 4 MiB messages, depth 64.</summary>
    public static MsgPackLimits Default { get; } = new();

    /// <summary>Largest whole message in bytes (default 4 MiB).</summary>
    public int MaxMessageBytes { get; init; } = 4 << 20;

    /// <summary>Deepest nesting of arrays and maps; a top-level array is depth 1 (default 64).</summary>
    public int MaxDepth { get; init; } = 64;

    /// <summary>Largest str payload in bytes (default 4 MiB).</summary>
    public int MaxStringBytes { get; init; } = 4 << 20;

    /// <summary>Largest bin or ext payload in bytes (default 4 MiB).</summary>
    public int MaxBinaryBytes { get; init; } = 4 << 20;

    /// <summary>Most elements in one array (default 262 144).</summary>
    public int MaxArrayCount { get; init; } = 1 << 18;

    /// <summary>Most key/value pairs in one map (default 65 536).</summary>
    public int MaxMapCount { get; init; } = 1 << 16;

    /// <summary>Most values (every scalar, array, map, key and value counts one) in one message (default 524 288).</summary>
    public int MaxTotalElements { get; init; } = 1 << 19;

    private static readonly MessagePackSecurity DefaultSecurity =
        MessagePackSecurity.UntrustedData.WithMaximumObjectGraphDepth(Default.MaxDepth);

    /// <summary>
    /// MessagePack-CSharp's settings for untrusted data (collision-resistant hashing, depth limit) with the depth
    /// limit set to <see cref="MaxDepth"/>. A new copy per call unless the depth is the default one.
    /// </summary>
    internal MessagePackSecurity Security => MaxDepth == DefaultSecurity.MaximumObjectGraphDepth
        ? DefaultSecurity
        : MessagePackSecurity.UntrustedData.WithMaximumObjectGraphDepth(MaxDepth);

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when a limit is not positive.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxMessageBytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxDepth, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxStringBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxBinaryBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxArrayCount);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxMapCount);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxTotalElements, 1);
    }
}
