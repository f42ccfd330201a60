namespace Serving.Engine.Gguf;

/// <summary>
/// The key/value metadata of a GGUF file, in file order. Typed getters throw <see cref="GgufFormatException"/>
/// naming the key (and the value's file offset) when a key is missing or holds the wrong type, so consumers
/// (tokenizer, model loader) get a clear error without their own checks. Immutable after parsing; thread-safe.
/// </summary>
public sealed class GgufMetadata
{
    private readonly List<string> _keys = new();
    private readonly Dictionary<string, GgufValue> _values = new(StringComparer.Ordinal);

    /// <summary>Keys in file order.</summary>
    public IEnumerable<string> Keys => _keys;

    /// <summary>Number of keys.</summary>
    public int Count => _keys.Count;

    /// <summary>The raw value of <paramref name="key"/>; throws <see cref="GgufFormatException"/> when missing.</summary>
    public GgufValue this[string key] => _values.TryGetValue(key, out var v) ? v : throw Missing(key);

    /// <summary>Adds a key; false when it is already present (the parser turns that into an error).</summary>
    internal bool TryAdd(string key, GgufValue value)
    {
        if (!_values.TryAdd(key, value))
            return false;
        _keys.Add(key);
        return true;
    }

    /// <summary>True when the key is present.</summary>
    public bool Contains(string key) => _values.ContainsKey(key);

    /// <summary>The raw value, or false when missing.</summary>
    public bool TryGetValue(string key, out GgufValue value) => _values.TryGetValue(key, out value!);

    /// <summary>Type of the key's value (<see cref="GgufValueType.Array"/> for arrays); throws when missing.</summary>
    public GgufValueType TypeOf(string key) => this[key].Type;

    /// <summary>Absolute file offset of the key's value (-1 for in-memory values); throws when missing.</summary>
    public long OffsetOf(string key) => this[key].Offset;

    /// <summary>
    /// Builds a <see cref="GgufFormatException"/> for <paramref name="key"/> at its value's offset, for consumers'
    /// semantic checks ("tokenizer.ggml.scores has 31999 entries but tokens has 32000").
    /// </summary>
    public GgufFormatException Error(string key, string detail) =>
        new(key, _values.TryGetValue(key, out var v) ? v.Offset : -1, detail);

    /// <summary>A string value.</summary>
    public string GetString(string key) => TryGetString(key, out var s) ? s : throw WrongOrMissing(key, "a string");

    /// <summary>A string value, or false when missing. Throws when present with another type.</summary>
    public bool TryGetString(string key, out string value)
    {
        value = "";
        if (!_values.TryGetValue(key, out var v))
            return false;
        if (v.Value is not string s)
            throw WrongType(key, v, "a string");
        value = s;
        return true;
    }

    /// <summary>An integer value of any integer type that fits in uint32 (counts, ids, dimensions).</summary>
    public uint GetUInt32(string key) => TryGetUInt32(key, out var u) ? u : throw Missing(key);

    /// <summary>
    /// An integer value that fits in uint32, or false when missing. Throws when present but not an integer or out
    /// of range (negative, ≥ 2^32).
    /// </summary>
    public bool TryGetUInt32(string key, out uint value)
    {
        value = 0;
        if (!_values.TryGetValue(key, out var v))
            return false;
        if (v.IsArray || !v.TryGetInt64(out long l))
            throw WrongType(key, v, "an unsigned 32-bit integer");
        if (l < 0 || l > uint.MaxValue)
            throw new GgufFormatException(key, v.Offset, $"value {l} does not fit an unsigned 32-bit integer");
        value = (uint)l;
        return true;
    }

    /// <summary>
    /// An index (e.g. a token id) that must be below <paramref name="count"/> (e.g. the vocabulary size).
    /// Throws naming the key and both numbers otherwise.
    /// </summary>
    public int GetIndex(string key, int count) =>
        TryGetIndex(key, count, out int i) ? i : throw Missing(key);

    /// <summary>Like <see cref="GetIndex"/>, but false when the key is missing.</summary>
    public bool TryGetIndex(string key, int count, out int value)
    {
        value = 0;
        if (!TryGetUInt32(key, out uint u))
            return false;
        if (u >= (uint)Math.Max(count, 0))
            throw new GgufFormatException(key, OffsetOf(key), $"value {u} is not below {count}");
        value = (int)u;
        return true;
    }

    /// <summary>A float value stored as float32 or float64 (float64 is rounded to float32).</summary>
    public float GetFloat32(string key) => TryGetFloat32(key, out var f) ? f : throw Missing(key);

    /// <summary>A float32/float64 value, or false when missing. Throws when present with another type.</summary>
    public bool TryGetFloat32(string key, out float value)
    {
        value = 0;
        if (!_values.TryGetValue(key, out var v))
            return false;
        value = v.Value switch
        {
            float f => f,
            double d => (float)d,
            _ => throw WrongType(key, v, "a float"),
        };
        return true;
    }

    /// <summary>A bool value.</summary>
    public bool GetBool(string key) => TryGetBool(key, out var b) ? b : throw Missing(key);

    /// <summary>A bool value, or false when missing. Throws when present with another type.</summary>
    public bool TryGetBool(string key, out bool value)
    {
        value = false;
        if (!_values.TryGetValue(key, out var v))
            return false;
        if (v.Value is not bool b)
            throw WrongType(key, v, "a bool");
        value = b;
        return true;
    }

    /// <summary>Length of an array value; throws when missing or not an array.</summary>
    public int GetArrayLength(string key)
    {
        var v = this[key];
        return v.IsArray ? v.Count : throw WrongType(key, v, "an array");
    }

    /// <summary>A string array. The returned array is shared: do not modify it.</summary>
    public string[] GetStringArray(string key)
    {
        var v = this[key];
        return v.Value as string[] ?? throw WrongType(key, v, "an array of strings");
    }

    /// <summary>A float array from float32 elements (shared: do not modify) or float64 elements (converted copy).</summary>
    public float[] GetFloat32Array(string key)
    {
        var v = this[key];
        return v.IsArray ? v.ElementType switch
        {
            GgufValueType.Float32 => (float[])v.Value,
            GgufValueType.Float64 => System.Array.ConvertAll((double[])v.Value, x => (float)x),
            _ => throw WrongType(key, v, "an array of floats"),
        } : throw WrongType(key, v, "an array of floats");
    }

    /// <summary>
    /// An int32 array from any integer element type whose values fit int32 (int32 arrays are shared: do not
    /// modify; others are converted copies). Throws naming the first element that does not fit.
    /// </summary>
    public int[] GetInt32Array(string key)
    {
        var v = this[key];
        if (!v.IsArray)
            throw WrongType(key, v, "an array of integers");
        // Switch on the declared element type, not on the array's runtime type: the CLR lets a byte[] pass as
        // sbyte[] (and uint[] as int[]), so type patterns would misread the signedness.
        var a = (System.Array)v.Value;
        return v.ElementType switch
        {
            GgufValueType.Int32 => (int[])a,
            GgufValueType.Int8 => System.Array.ConvertAll((sbyte[])a, x => (int)x),
            GgufValueType.UInt8 => System.Array.ConvertAll((byte[])a, x => (int)x),
            GgufValueType.Int16 => System.Array.ConvertAll((short[])a, x => (int)x),
            GgufValueType.UInt16 => System.Array.ConvertAll((ushort[])a, x => (int)x),
            GgufValueType.UInt32 => Narrow(key, v, a.Length, j => ((uint[])a)[j]),
            GgufValueType.Int64 => Narrow(key, v, a.Length, j => ((long[])a)[j]),
            GgufValueType.UInt64 => Narrow(key, v, a.Length, j => ((ulong[])a)[j] > long.MaxValue ? long.MaxValue : (long)((ulong[])a)[j]),
            _ => throw WrongType(key, v, "an array of integers"),
        };
    }

    private static int[] Narrow(string key, GgufValue v, int n, Func<int, long> get)
    {
        var r = new int[n];
        for (int j = 0; j < n; j++)
        {
            long x = get(j);
            if (x < int.MinValue || x > int.MaxValue)
                throw new GgufFormatException(key, v.Offset, $"element {j} = {x} does not fit a 32-bit integer");
            r[j] = (int)x;
        }
        return r;
    }

    private static GgufFormatException Missing(string key) => new(key, -1, "required key is missing");

    private GgufFormatException WrongOrMissing(string key, string expected) =>
        _values.TryGetValue(key, out var v) ? WrongType(key, v, expected) : Missing(key);

    private static GgufFormatException WrongType(string key, GgufValue v, string expected)
    {
        string actual = v.IsArray ? $"an array of {v.ElementType}" : v.Type.ToString();
        return new GgufFormatException(key, v.Offset, $"expected {expected}, found {actual}");
    }
}
