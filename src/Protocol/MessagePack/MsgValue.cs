using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace Serving.Protocol.MessagePack;

/// <summary>
/// One MessagePack value: nil, bool, integer, float, str, bin, array, map, ext or timestamp. A small immutable
/// struct (24 bytes); the default value is nil. Arrays and maps reference the arrays given to the factories
/// (no copy): callers hand ownership over and must not mutate them afterwards. Maps are ordered pair lists,
/// never hashed, so lookups are linear scans and untrusted keys cannot force hash collisions.
/// </summary>
public readonly struct MsgValue : IEquatable<MsgValue>
{
    // Layout by kind: Bool/Int/UInt → _bits; Float32 → _bits = single bits; Float64 → _bits = double bits;
    // Str → _ref string; Bin → _ref byte[]; Array → _ref MsgValue[]; Map → _ref KeyValuePair<MsgValue,MsgValue>[];
    // Ext → _ref byte[], _bits = (ulong)(long)type; Timestamp → _bits = (ulong)seconds, _aux = nanoseconds.
    private readonly object? _ref;
    private readonly ulong _bits;
    private readonly uint _aux;
    private readonly MsgValueKind _kind;

    private MsgValue(MsgValueKind kind, ulong bits = 0, object? reference = null, uint aux = 0)
    {
        _kind = kind;
        _bits = bits;
        _ref = reference;
        _aux = aux;
    }

    /// <summary>The nil value (same as <c>default</c>).</summary>
    public static MsgValue Nil => default;

    /// <summary>An empty array.</summary>
    public static MsgValue EmptyArray { get; } = new(MsgValueKind.Array, reference: System.Array.Empty<MsgValue>());

    /// <summary>An empty map.</summary>
    public static MsgValue EmptyMap { get; } =
        new(MsgValueKind.Map, reference: System.Array.Empty<KeyValuePair<MsgValue, MsgValue>>());

    /// <summary>What this value is.</summary>
    public MsgValueKind Kind => _kind;

    /// <summary>True for nil.</summary>
    public bool IsNil => _kind == MsgValueKind.Nil;

    /// <summary>True for <see cref="MsgValueKind.Int"/> and <see cref="MsgValueKind.UInt"/>.</summary>
    public bool IsInteger => _kind is MsgValueKind.Int or MsgValueKind.UInt;

    // ---- factories ----

    /// <summary>A boolean.</summary>
    public static MsgValue FromBool(bool value) => new(MsgValueKind.Bool, value ? 1UL : 0UL);

    /// <summary>A signed integer.</summary>
    public static MsgValue FromInt64(long value) => new(MsgValueKind.Int, unchecked((ulong)value));

    /// <summary>An unsigned integer; values up to <see cref="long.MaxValue"/> become <see cref="MsgValueKind.Int"/>.</summary>
    public static MsgValue FromUInt64(ulong value) =>
        value <= long.MaxValue ? new(MsgValueKind.Int, value) : new(MsgValueKind.UInt, value);

    /// <summary>A float 32 (encoded as 0xca).</summary>
    public static MsgValue FromFloat32(float value) => new(MsgValueKind.Float32, BitConverter.SingleToUInt32Bits(value));

    /// <summary>A float 64 (encoded as 0xcb).</summary>
    public static MsgValue FromFloat64(double value) => new(MsgValueKind.Float64, BitConverter.DoubleToUInt64Bits(value));

    /// <summary>A string (encoded as UTF-8 str).</summary>
    public static MsgValue FromString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return new(MsgValueKind.Str, reference: value);
    }

    /// <summary>Binary data; the array is referenced, not copied.</summary>
    public static MsgValue FromBinary(byte[] value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return new(MsgValueKind.Bin, reference: value);
    }

    /// <summary>An array; <paramref name="items"/> is referenced, not copied.</summary>
    public static MsgValue FromArray(params MsgValue[] items)
    {
        ArgumentNullException.ThrowIfNull(items);
        return new(MsgValueKind.Array, reference: items);
    }

    /// <summary>A map from ordered pairs; the array is referenced, not copied. Duplicate keys are kept as given.</summary>
    public static MsgValue FromMap(KeyValuePair<MsgValue, MsgValue>[] entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        return new(MsgValueKind.Map, reference: entries);
    }

    /// <summary>A map from ordered (key, value) pairs, e.g. <c>MsgValue.Map(("prompt", "Hi"), ("max_tokens", 16))</c>.</summary>
    public static MsgValue Map(params (MsgValue Key, MsgValue Value)[] entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var pairs = new KeyValuePair<MsgValue, MsgValue>[entries.Length];
        for (int i = 0; i < entries.Length; i++)
        {
            pairs[i] = new(entries[i].Key, entries[i].Value);
        }
        return new(MsgValueKind.Map, reference: pairs);
    }

    /// <summary>An application extension value; <paramref name="data"/> is referenced, not copied.</summary>
    /// <exception cref="ArgumentException">Type −1 (reserved for timestamps: use <see cref="FromTimestamp"/>).</exception>
    public static MsgValue FromExt(sbyte type, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (type == -1)
        {
            throw new ArgumentException("Ext type -1 is the timestamp type; use FromTimestamp.", nameof(type));
        }
        return new(MsgValueKind.Ext, unchecked((ulong)(long)type), data);
    }

    /// <summary>A timestamp: seconds since 1970-01-01T00:00:00Z (may be negative) plus nanoseconds.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nanoseconds"/> ≥ 1 000 000 000.</exception>
    public static MsgValue FromTimestamp(long seconds, uint nanoseconds)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(nanoseconds, 1_000_000_000u);
        return new(MsgValueKind.Timestamp, unchecked((ulong)seconds), aux: nanoseconds);
    }

    /// <summary>Converts a string; null becomes nil.</summary>
    public static implicit operator MsgValue(string? value) => value is null ? Nil : FromString(value);

    /// <summary>Converts a signed integer.</summary>
    public static implicit operator MsgValue(long value) => FromInt64(value);

    /// <summary>Converts a 32-bit integer (exact match, so int literals are not ambiguous).</summary>
    public static implicit operator MsgValue(int value) => FromInt64(value);

    /// <summary>Converts an unsigned 32-bit integer (e.g. a msgid).</summary>
    public static implicit operator MsgValue(uint value) => FromInt64(value);

    /// <summary>Converts an unsigned integer.</summary>
    public static implicit operator MsgValue(ulong value) => FromUInt64(value);

    /// <summary>Converts a boolean.</summary>
    public static implicit operator MsgValue(bool value) => FromBool(value);

    /// <summary>Converts a double (float 64).</summary>
    public static implicit operator MsgValue(double value) => FromFloat64(value);

    /// <summary>Converts binary data (referenced, not copied); null becomes nil.</summary>
    public static implicit operator MsgValue(byte[]? value) => value is null ? Nil : FromBinary(value);

    // ---- accessors ----

    /// <summary>The boolean value.</summary>
    /// <exception cref="InvalidOperationException">Not a bool.</exception>
    public bool AsBool() => _kind == MsgValueKind.Bool ? _bits != 0 : throw WrongKind(MsgValueKind.Bool);

    /// <summary>Gets the value when it is an integer that fits in <see cref="long"/>.</summary>
    public bool TryGetInt64(out long value)
    {
        value = unchecked((long)_bits);
        return _kind == MsgValueKind.Int;
    }

    /// <summary>Gets the value when it is a non-negative integer.</summary>
    public bool TryGetUInt64(out ulong value)
    {
        value = _bits;
        return _kind == MsgValueKind.UInt || (_kind == MsgValueKind.Int && (long)_bits >= 0);
    }

    /// <summary>The integer value.</summary>
    /// <exception cref="InvalidOperationException">Not an integer, or above <see cref="long.MaxValue"/>.</exception>
    public long AsInt64() => _kind == MsgValueKind.Int ? unchecked((long)_bits) : throw WrongKind(MsgValueKind.Int);

    /// <summary>Gets any numeric value (integer or float) as a double; integers may round.</summary>
    public bool TryGetDouble(out double value)
    {
        switch (_kind)
        {
            case MsgValueKind.Int: value = unchecked((long)_bits); return true;
            case MsgValueKind.UInt: value = _bits; return true;
            case MsgValueKind.Float32: value = BitConverter.UInt32BitsToSingle((uint)_bits); return true;
            case MsgValueKind.Float64: value = BitConverter.UInt64BitsToDouble(_bits); return true;
            default: value = 0; return false;
        }
    }

    /// <summary>The float 32 value.</summary>
    /// <exception cref="InvalidOperationException">Not a float 32.</exception>
    public float AsFloat32() =>
        _kind == MsgValueKind.Float32 ? BitConverter.UInt32BitsToSingle((uint)_bits) : throw WrongKind(MsgValueKind.Float32);

    /// <summary>The float 64 value.</summary>
    /// <exception cref="InvalidOperationException">Not a float 64.</exception>
    public double AsFloat64() =>
        _kind == MsgValueKind.Float64 ? BitConverter.UInt64BitsToDouble(_bits) : throw WrongKind(MsgValueKind.Float64);

    /// <summary>Gets the string when this is a str.</summary>
    public bool TryGetString([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? value)
    {
        value = _kind == MsgValueKind.Str ? (string)_ref! : null;
        return value is not null;
    }

    /// <summary>The string value.</summary>
    /// <exception cref="InvalidOperationException">Not a str.</exception>
    public string AsString() => _kind == MsgValueKind.Str ? (string)_ref! : throw WrongKind(MsgValueKind.Str);

    /// <summary>The bytes of a bin, or the data of an ext.</summary>
    /// <exception cref="InvalidOperationException">Neither bin nor ext.</exception>
    public ReadOnlyMemory<byte> AsBinary() =>
        _kind is MsgValueKind.Bin or MsgValueKind.Ext ? (byte[])_ref! : throw WrongKind(MsgValueKind.Bin);

    /// <summary>The ext type (−128..127, never −1).</summary>
    /// <exception cref="InvalidOperationException">Not an ext.</exception>
    public sbyte ExtType => _kind == MsgValueKind.Ext ? unchecked((sbyte)(long)_bits) : throw WrongKind(MsgValueKind.Ext);

    /// <summary>The timestamp as seconds since the Unix epoch and nanoseconds (0..999 999 999).</summary>
    /// <exception cref="InvalidOperationException">Not a timestamp.</exception>
    public (long Seconds, uint Nanoseconds) AsTimestamp() =>
        _kind == MsgValueKind.Timestamp ? (unchecked((long)_bits), _aux) : throw WrongKind(MsgValueKind.Timestamp);

    /// <summary>The items of an array.</summary>
    /// <exception cref="InvalidOperationException">Not an array.</exception>
    public ReadOnlySpan<MsgValue> AsArray() =>
        _kind == MsgValueKind.Array ? (MsgValue[])_ref! : throw WrongKind(MsgValueKind.Array);

    /// <summary>The ordered entries of a map.</summary>
    /// <exception cref="InvalidOperationException">Not a map.</exception>
    public ReadOnlySpan<KeyValuePair<MsgValue, MsgValue>> AsMap() =>
        _kind == MsgValueKind.Map ? (KeyValuePair<MsgValue, MsgValue>[])_ref! : throw WrongKind(MsgValueKind.Map);

    /// <summary>Number of items of an array, pairs of a map, or bytes of a str (UTF-16 units)/bin/ext; 0 otherwise.</summary>
    public int Count => _kind switch
    {
        MsgValueKind.Array => ((MsgValue[])_ref!).Length,
        MsgValueKind.Map => ((KeyValuePair<MsgValue, MsgValue>[])_ref!).Length,
        MsgValueKind.Str => ((string)_ref!).Length,
        MsgValueKind.Bin or MsgValueKind.Ext => ((byte[])_ref!).Length,
        _ => 0,
    };

    /// <summary>The array item at <paramref name="index"/>.</summary>
    public MsgValue this[int index] => AsArray()[index];

    /// <summary>
    /// Finds the first entry of a map whose key is the str <paramref name="key"/> (ordinal). Linear scan; false
    /// when not a map or no such key.
    /// </summary>
    public bool TryGetValue(string key, out MsgValue value)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (_kind == MsgValueKind.Map)
        {
            foreach (var entry in (KeyValuePair<MsgValue, MsgValue>[])_ref!)
            {
                if (entry.Key._kind == MsgValueKind.Str && string.Equals((string)entry.Key._ref!, key, StringComparison.Ordinal))
                {
                    value = entry.Value;
                    return true;
                }
            }
        }
        value = default;
        return false;
    }

    private InvalidOperationException WrongKind(MsgValueKind expected) =>
        new($"MessagePack value is {_kind}, not {expected}.");

    // ---- equality (structural; floats compare by bits so NaN equals itself) ----

    /// <inheritdoc/>
    public bool Equals(MsgValue other)
    {
        if (_kind != other._kind)
        {
            return false;
        }
        switch (_kind)
        {
            case MsgValueKind.Nil:
                return true;
            case MsgValueKind.Str:
                return string.Equals((string)_ref!, (string)other._ref!, StringComparison.Ordinal);
            case MsgValueKind.Bin:
                return ((byte[])_ref!).AsSpan().SequenceEqual((byte[])other._ref!);
            case MsgValueKind.Ext:
                return _bits == other._bits && ((byte[])_ref!).AsSpan().SequenceEqual((byte[])other._ref!);
            case MsgValueKind.Array:
            {
                // Deep values built by code (not decoded ones, which are depth-limited) could be arbitrarily deep:
                // fail with an exception rather than overflow the stack.
                RuntimeHelpers.EnsureSufficientExecutionStack();
                var a = (MsgValue[])_ref!;
                var b = (MsgValue[])other._ref!;
                return a.AsSpan().SequenceEqual(b);
            }
            case MsgValueKind.Map:
            {
                RuntimeHelpers.EnsureSufficientExecutionStack();
                var a = (KeyValuePair<MsgValue, MsgValue>[])_ref!;
                var b = (KeyValuePair<MsgValue, MsgValue>[])other._ref!;
                if (a.Length != b.Length)
                {
                    return false;
                }
                for (int i = 0; i < a.Length; i++)
                {
                    if (!a[i].Key.Equals(b[i].Key) || !a[i].Value.Equals(b[i].Value))
                    {
                        return false;
                    }
                }
                return true;
            }
            default:
                return _bits == other._bits && _aux == other._aux;
        }
    }

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is MsgValue other && Equals(other);

    /// <summary>
    /// Hash consistent with <see cref="Equals(MsgValue)"/>, built on <see cref="HashCode"/> (randomly seeded per
    /// process) so that keys chosen by a client cannot be made to collide on purpose. Containers hash their
    /// count and first items only.
    /// </summary>
    public override int GetHashCode()
    {
        switch (_kind)
        {
            case MsgValueKind.Str:
                return HashCode.Combine(_kind, string.GetHashCode((string)_ref!, StringComparison.Ordinal));
            case MsgValueKind.Bin:
            case MsgValueKind.Ext:
            {
                var h = new HashCode();
                h.Add(_kind);
                h.Add(_bits);
                h.AddBytes((byte[])_ref!);
                return h.ToHashCode();
            }
            case MsgValueKind.Array:
            {
                var items = (MsgValue[])_ref!;
                return HashCode.Combine(_kind, items.Length, items.Length > 0 ? items[0].GetHashCode() : 0);
            }
            case MsgValueKind.Map:
            {
                var entries = (KeyValuePair<MsgValue, MsgValue>[])_ref!;
                return HashCode.Combine(_kind, entries.Length, entries.Length > 0 ? entries[0].Key.GetHashCode() : 0);
            }
            default:
                return HashCode.Combine(_kind, _bits, _aux);
        }
    }

    /// <summary>Structural equality.</summary>
    public static bool operator ==(MsgValue left, MsgValue right) => left.Equals(right);

    /// <summary>Structural inequality.</summary>
    public static bool operator !=(MsgValue left, MsgValue right) => !left.Equals(right);

    /// <summary>A JSON-like rendering for diagnostics, cut at about 1 000 characters.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        Append(sb, this, 0);
        return sb.Length > 1000 ? sb.ToString(0, 1000) + "…" : sb.ToString();
    }

    private static void Append(StringBuilder sb, MsgValue v, int depth)
    {
        if (sb.Length > 1000 || depth > 32)
        {
            sb.Append('…');
            return;
        }
        switch (v._kind)
        {
            case MsgValueKind.Nil: sb.Append("nil"); break;
            case MsgValueKind.Bool: sb.Append(v._bits != 0 ? "true" : "false"); break;
            case MsgValueKind.Int: sb.Append(unchecked((long)v._bits).ToString(CultureInfo.InvariantCulture)); break;
            case MsgValueKind.UInt: sb.Append(v._bits.ToString(CultureInfo.InvariantCulture)); break;
            case MsgValueKind.Float32: sb.Append(v.AsFloat32().ToString("R", CultureInfo.InvariantCulture)).Append('f'); break;
            case MsgValueKind.Float64: sb.Append(v.AsFloat64().ToString("R", CultureInfo.InvariantCulture)); break;
            case MsgValueKind.Str: sb.Append('"').Append((string)v._ref!).Append('"'); break;
            case MsgValueKind.Bin: sb.Append("bin(").Append(Convert.ToHexString((byte[])v._ref!)).Append(')'); break;
            case MsgValueKind.Ext:
                sb.Append("ext(").Append(v.ExtType).Append(',').Append(Convert.ToHexString((byte[])v._ref!)).Append(')');
                break;
            case MsgValueKind.Timestamp:
                sb.Append("timestamp(").Append(unchecked((long)v._bits)).Append(',').Append(v._aux).Append(')');
                break;
            case MsgValueKind.Array:
                sb.Append('[');
                var items = (MsgValue[])v._ref!;
                for (int i = 0; i < items.Length; i++)
                {
                    if (i > 0) sb.Append(", ");
                    Append(sb, items[i], depth + 1);
                    if (sb.Length > 1000) break;
                }
                sb.Append(']');
                break;
            case MsgValueKind.Map:
                sb.Append('{');
                var entries = (KeyValuePair<MsgValue, MsgValue>[])v._ref!;
                for (int i = 0; i < entries.Length; i++)
                {
                    if (i > 0) sb.Append(", ");
                    Append(sb, entries[i].Key, depth + 1);
                    sb.Append(": ");
                    Append(sb, entries[i].Value, depth + 1);
                    if (sb.Length > 1000) break;
                }
                sb.Append('}');
                break;
        }
    }
}
