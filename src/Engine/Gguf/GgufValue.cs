namespace Serving.Engine.Gguf;

/// <summary>GGUF metadata value types; numbers are the on-disk ids (gguf_type).</summary>
public enum GgufValueType : uint
{
    /// <summary>uint8.</summary>
    UInt8 = 0,
    /// <summary>int8.</summary>
    Int8 = 1,
    /// <summary>uint16.</summary>
    UInt16 = 2,
    /// <summary>int16.</summary>
    Int16 = 3,
    /// <summary>uint32.</summary>
    UInt32 = 4,
    /// <summary>int32.</summary>
    Int32 = 5,
    /// <summary>IEEE float32.</summary>
    Float32 = 6,
    /// <summary>One byte, 0 or 1.</summary>
    Bool = 7,
    /// <summary>uint64 length + UTF-8 bytes (no terminator).</summary>
    String = 8,
    /// <summary>uint32 element type + uint64 count + elements; arrays of arrays are not read.</summary>
    Array = 9,
    /// <summary>uint64.</summary>
    UInt64 = 10,
    /// <summary>int64.</summary>
    Int64 = 11,
    /// <summary>IEEE float64.</summary>
    Float64 = 12,
}

/// <summary>
/// One metadata value: a scalar, a string or a one-level array. Immutable. Arrays hold a typed .NET array
/// (byte[], sbyte[], ushort[], short[], uint[], int[], float[], bool[], string[], ulong[], long[], double[]).
/// </summary>
public sealed class GgufValue
{
    private readonly object _value;

    private GgufValue(GgufValueType type, GgufValueType elementType, object value, long offset)
    {
        Type = type;
        ElementType = elementType;
        _value = value;
        Offset = offset;
    }

    /// <summary>The value's type; <see cref="GgufValueType.Array"/> for arrays.</summary>
    public GgufValueType Type { get; }

    /// <summary>For arrays, the element type; otherwise equal to <see cref="Type"/>.</summary>
    public GgufValueType ElementType { get; }

    /// <summary>Absolute file offset of the value's type id; -1 for values built in memory.</summary>
    public long Offset { get; }

    /// <summary>The boxed scalar, the string, or the typed array (see the class summary).</summary>
    public object Value => _value;

    /// <summary>True for arrays.</summary>
    public bool IsArray => Type == GgufValueType.Array;

    /// <summary>Elements of an array; 1 for scalars and strings.</summary>
    public int Count => _value is System.Array a ? a.Length : 1;

    /// <summary>Creates a scalar or string value; <paramref name="value"/> must be the .NET type matching <paramref name="type"/>.</summary>
    public static GgufValue Scalar(GgufValueType type, object value, long offset = -1)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (type == GgufValueType.Array || ClrType(type) != value.GetType())
            throw new ArgumentException($"a {type} value must be a {ClrType(type).Name}, got {value.GetType().Name}", nameof(value));
        return new GgufValue(type, type, value, offset);
    }

    /// <summary>Creates an array value; <paramref name="elements"/> must be an array of the .NET type matching <paramref name="elementType"/>.</summary>
    public static GgufValue Array(GgufValueType elementType, System.Array elements, long offset = -1)
    {
        ArgumentNullException.ThrowIfNull(elements);
        if (elementType == GgufValueType.Array)
            throw new ArgumentException("arrays of arrays are not supported", nameof(elementType));
        if (elements.GetType().GetElementType() != ClrType(elementType) || elements.Rank != 1)
            throw new ArgumentException($"a {elementType} array must be a {ClrType(elementType).Name}[]", nameof(elements));
        if (elementType == GgufValueType.String && System.Array.IndexOf(elements, null) >= 0)
            throw new ArgumentException("string arrays must not contain null", nameof(elements));
        return new GgufValue(GgufValueType.Array, elementType, elements, offset);
    }

    /// <summary>Bytes of one element of a fixed-size type; 0 for strings and arrays.</summary>
    public static int FixedSize(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        _ => 0,
    };

    /// <summary>True for the 13 defined type ids.</summary>
    public static bool IsDefined(GgufValueType type) => (uint)type <= (uint)GgufValueType.Float64;

    internal static Type ClrType(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 => typeof(byte),
        GgufValueType.Int8 => typeof(sbyte),
        GgufValueType.UInt16 => typeof(ushort),
        GgufValueType.Int16 => typeof(short),
        GgufValueType.UInt32 => typeof(uint),
        GgufValueType.Int32 => typeof(int),
        GgufValueType.Float32 => typeof(float),
        GgufValueType.Bool => typeof(bool),
        GgufValueType.String => typeof(string),
        GgufValueType.UInt64 => typeof(ulong),
        GgufValueType.Int64 => typeof(long),
        GgufValueType.Float64 => typeof(double),
        _ => typeof(void),
    };

    /// <summary>The value as a signed 64-bit integer when it is a scalar integer that fits; false otherwise.</summary>
    public bool TryGetInt64(out long value)
    {
        switch (_value)
        {
            case byte v: value = v; return true;
            case sbyte v: value = v; return true;
            case ushort v: value = v; return true;
            case short v: value = v; return true;
            case uint v: value = v; return true;
            case int v: value = v; return true;
            case long v: value = v; return true;
            case ulong v when v <= long.MaxValue: value = (long)v; return true;
            default: value = 0; return false;
        }
    }

    /// <inheritdoc/>
    public override string ToString() => IsArray ? $"{ElementType}[{Count}]" : $"{Type} {_value}";
}
