namespace Serving.Protocol.MessagePack;

/// <summary>Why a MessagePack input was rejected.</summary>
public enum MsgPackErrorCode
{
    /// <summary>The input ended inside a value (more bytes were required).</summary>
    Truncated,
    /// <summary>The bytes are not valid MessagePack (never-used byte 0xc1, invalid UTF-8, bad timestamp, trailing bytes).</summary>
    Malformed,
    /// <summary>A declared or actual size exceeds a <see cref="MsgPackLimits"/> limit.</summary>
    LimitExceeded,
    /// <summary>Arrays/maps nest deeper than <see cref="MsgPackLimits.MaxDepth"/>.</summary>
    DepthExceeded,
}

/// <summary>A MessagePack input was rejected; <see cref="Code"/> says why and <see cref="Offset"/> where.</summary>
public sealed class MsgPackException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="code">The error class.</param>
    /// <param name="offset">Byte offset in the message of the token that failed, or −1 when not known.</param>
    /// <param name="message">Human-readable reason (no input bytes beyond small numbers are echoed).</param>
    public MsgPackException(MsgPackErrorCode code, long offset, string message)
        : base(offset >= 0 ? $"{message} (at byte {offset})" : message)
    {
        Code = code;
        Offset = offset;
    }

    /// <summary>The error class.</summary>
    public MsgPackErrorCode Code { get; }

    /// <summary>Byte offset from the start of the message of the failing token, or −1.</summary>
    public long Offset { get; }
}
