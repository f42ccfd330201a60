namespace Serving.Protocol.MessagePack;

/// <summary>The kind of a decoded MessagePack value (<see cref="MsgValue"/>).</summary>
public enum MsgValueKind : byte
{
    /// <summary><c>nil</c> (0xc0). The default <see cref="MsgValue"/> is nil.</summary>
    Nil = 0,
    /// <summary><c>true</c> / <c>false</c>.</summary>
    Bool,
    /// <summary>An integer of any width that fits in <see cref="long"/>.</summary>
    Int,
    /// <summary>An unsigned 64-bit integer above <see cref="long.MaxValue"/> (only uint64 can hold it).</summary>
    UInt,
    /// <summary>IEEE 754 single precision (float 32).</summary>
    Float32,
    /// <summary>IEEE 754 double precision (float 64).</summary>
    Float64,
    /// <summary>UTF-8 text (str family), held as a .NET string.</summary>
    Str,
    /// <summary>Raw bytes (bin family).</summary>
    Bin,
    /// <summary>An ordered sequence of values.</summary>
    Array,
    /// <summary>An ordered list of key/value pairs (duplicates and order preserved, never hashed).</summary>
    Map,
    /// <summary>An application extension type (type 0..127, or a negative type other than −1).</summary>
    Ext,
    /// <summary>The predefined timestamp extension (type −1): seconds and nanoseconds since the Unix epoch.</summary>
    Timestamp,
}
