using Serving.Protocol.MessagePack;

namespace Serving.Client;

/// <summary>
/// Typed reads of reply fields. A server that sends the wrong shape gets an <see cref="InvalidDataException"/>
/// naming the method and field, never an InvalidCastException from deep inside a record constructor.
/// </summary>
internal readonly struct ReplyReader
{
    private readonly MsgValue _map;
    private readonly string _method;

    public ReplyReader(MsgValue map, string method)
    {
        _method = method;
        _map = map.Kind == MsgValueKind.Map ? map : throw new InvalidDataException($"reply to '{method}' is a {map.Kind}, not a map");
    }

    public MsgValue Map => _map;

    public string String(string key) => OptionalString(key) ?? throw Missing(key, "a string");

    public string? OptionalString(string key)
    {
        if (!_map.TryGetValue(key, out var v) || v.IsNil) return null;
        return v.TryGetString(out var s) ? s : throw Missing(key, "a string");
    }

    public long Int64(string key) => OptionalInt64(key) ?? throw Missing(key, "an integer");

    public long? OptionalInt64(string key)
    {
        if (!_map.TryGetValue(key, out var v) || v.IsNil) return null;
        return v.TryGetInt64(out long x) ? x : throw Missing(key, "an integer");
    }

    public int Int32(string key)
    {
        long v = Int64(key);
        return v is >= int.MinValue and <= int.MaxValue ? (int)v : throw Missing(key, "a 32-bit integer");
    }

    public ulong UInt64(string key) =>
        _map.TryGetValue(key, out var v) && v.TryGetUInt64(out ulong x) ? x : throw Missing(key, "an unsigned integer");

    public double Double(string key) => OptionalDouble(key) ?? throw Missing(key, "a number");

    public double? OptionalDouble(string key)
    {
        if (!_map.TryGetValue(key, out var v) || v.IsNil) return null;
        return v.TryGetDouble(out double d) ? d : throw Missing(key, "a number");
    }

    public bool Bool(string key) =>
        _map.TryGetValue(key, out var v) && v.Kind == MsgValueKind.Bool ? v.AsBool() : throw Missing(key, "a boolean");

    public bool? OptionalBool(string key)
    {
        if (!_map.TryGetValue(key, out var v) || v.IsNil) return null;
        return v.Kind == MsgValueKind.Bool ? v.AsBool() : throw Missing(key, "a boolean");
    }

    public ReplyReader Child(string key) =>
        _map.TryGetValue(key, out var v) && v.Kind == MsgValueKind.Map ? new ReplyReader(v, _method) : throw Missing(key, "a map");

    public int[] Int32Array(string key) => ToInt32Array(Array(key), key);

    public string[] StringArray(string key)
    {
        var items = Array(key);
        var result = new string[items.Count];
        for (int i = 0; i < result.Length; i++)
            result[i] = items[i].TryGetString(out var s) ? s : throw Missing(key, "an array of strings");
        return result;
    }

    public MsgValue Array(string key) =>
        _map.TryGetValue(key, out var v) && v.Kind == MsgValueKind.Array ? v : throw Missing(key, "an array");

    private int[] ToInt32Array(MsgValue items, string key)
    {
        var result = new int[items.Count];
        for (int i = 0; i < result.Length; i++)
            result[i] = items[i].TryGetInt64(out long x) && x is >= int.MinValue and <= int.MaxValue ? (int)x : throw Missing(key, "an array of integers");
        return result;
    }

    private InvalidDataException Missing(string key, string what) =>
        new($"reply to '{_method}': field '{key}' is missing or not {what}");
}
