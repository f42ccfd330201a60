using System.Globalization;
using Serving.Protocol.MessagePack;

namespace Serving.Protocol.Rpc;

/// <summary>
/// The named arguments of a call: the map in the one-element params array (<c>[{"prompt": "Hi"}]</c>; an empty
/// params array means no arguments). Lookups are linear scans over the ordered pairs — argument maps are small
/// and nothing is hashed, so client-chosen keys cannot degrade it. Every failure is an
/// <see cref="RpcException"/> with code <see cref="RpcErrorCodes.BadRequest"/> naming the argument.
/// </summary>
public sealed class RpcArgs
{
    private readonly MsgValue _map;

    private RpcArgs(MsgValue map)
    {
        _map = map;
    }

    /// <summary>No arguments.</summary>
    public static RpcArgs Empty { get; } = new(MsgValue.EmptyMap);

    /// <summary>The argument map (kind Map).</summary>
    public MsgValue Map => _map;

    /// <summary>Number of entries in the map.</summary>
    public int Count => _map.Count;

    /// <summary>Reads the params array of a request: <c>[]</c> → no arguments, <c>[map]</c> → that map.</summary>
    /// <exception cref="RpcException">bad_request for any other shape.</exception>
    public static RpcArgs FromParams(MsgValue @params)
    {
        if (@params.Kind == MsgValueKind.Array)
        {
            var items = @params.AsArray();
            if (items.Length == 0)
            {
                return Empty;
            }
            if (items.Length == 1 && items[0].Kind == MsgValueKind.Map)
            {
                return new RpcArgs(items[0]);
            }
        }
        throw new RpcException(RpcErrorCodes.BadRequest, "params must be an array holding one map of named arguments");
    }

    /// <summary>Wraps an argument map.</summary>
    /// <exception cref="RpcException">bad_request when <paramref name="map"/> is not a map.</exception>
    public static RpcArgs FromMap(MsgValue map) =>
        map.Kind == MsgValueKind.Map ? new RpcArgs(map) : throw Bad("arguments must be a map");

    /// <summary>
    /// Refuses keys that are not strings, not in <paramref name="allowed"/>, or repeated — unknown keys are an
    /// error, never silently ignored. Cost: O(entries × allowed).
    /// </summary>
    public void EnsureOnly(params ReadOnlySpan<string> allowed)
    {
        Span<bool> seen = allowed.Length <= 64 ? stackalloc bool[allowed.Length] : new bool[allowed.Length];
        foreach (var entry in _map.AsMap())
        {
            if (!entry.Key.TryGetString(out var key))
            {
                throw Bad($"argument names must be strings, not {entry.Key.Kind}");
            }
            int index = -1;
            for (int i = 0; i < allowed.Length; i++)
            {
                if (string.Equals(allowed[i], key, StringComparison.Ordinal))
                {
                    index = i;
                    break;
                }
            }
            if (index < 0)
            {
                throw Bad(allowed.IsEmpty
                    ? $"unknown argument '{Truncate(key)}'; this method takes no arguments"
                    : $"unknown argument '{Truncate(key)}'; allowed: {string.Join(", ", allowed.ToArray())}");
            }
            if (seen[index])
            {
                throw Bad($"argument '{key}' given more than once");
            }
            seen[index] = true;
        }
    }

    /// <summary>Gets an argument; false when absent. A nil value counts as present.</summary>
    public bool TryGet(string name, out MsgValue value) => _map.TryGetValue(name, out value);

    /// <summary>True when the argument is present and not nil.</summary>
    public bool Has(string name) => _map.TryGetValue(name, out var v) && !v.IsNil;

    /// <summary>A required argument of any type.</summary>
    public MsgValue Get(string name) => Has(name) ? Value(name) : throw Bad($"argument '{name}' is required");

    /// <summary>A required string argument.</summary>
    public string GetString(string name) => GetOptionalString(name) ?? throw Bad($"argument '{name}' is required");

    /// <summary>An optional string argument (absent or nil → null).</summary>
    public string? GetOptionalString(string name)
    {
        if (!Has(name))
        {
            return null;
        }
        return Value(name).TryGetString(out var s) ? s : throw Bad($"argument '{name}' must be a string");
    }

    /// <summary>A required integer argument in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public long GetInt64(string name, long min = long.MinValue, long max = long.MaxValue) =>
        GetOptionalInt64(name, min, max) ?? throw Bad($"argument '{name}' is required");

    /// <summary>An optional integer argument in [<paramref name="min"/>, <paramref name="max"/>] (absent or nil → null).</summary>
    public long? GetOptionalInt64(string name, long min = long.MinValue, long max = long.MaxValue)
    {
        if (!Has(name))
        {
            return null;
        }
        var v = Value(name);
        if (v.Kind == MsgValueKind.UInt || (v.TryGetInt64(out long x) && (x < min || x > max)))
        {
            throw Bad($"argument '{name}' must be between {min} and {max}, got {v}");
        }
        return v.Kind == MsgValueKind.Int ? x : throw Bad($"argument '{name}' must be an integer, not {v.Kind}");
    }

    /// <summary>A required finite number (integer or float) in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public double GetDouble(string name, double min = double.MinValue, double max = double.MaxValue) =>
        GetOptionalDouble(name, min, max) ?? throw Bad($"argument '{name}' is required");

    /// <summary>An optional finite number in [<paramref name="min"/>, <paramref name="max"/>] (absent or nil → null). NaN and infinities are refused.</summary>
    public double? GetOptionalDouble(string name, double min = double.MinValue, double max = double.MaxValue)
    {
        if (!Has(name))
        {
            return null;
        }
        if (!Value(name).TryGetDouble(out double d))
        {
            throw Bad($"argument '{name}' must be a number");
        }
        if (!double.IsFinite(d) || d < min || d > max)
        {
            throw Bad(string.Create(CultureInfo.InvariantCulture,
                $"argument '{name}' must be a finite number between {min} and {max}, got {d}"));
        }
        return d;
    }

    /// <summary>An optional boolean argument (absent or nil → <paramref name="defaultValue"/>).</summary>
    public bool GetBool(string name, bool defaultValue)
    {
        if (!Has(name))
        {
            return defaultValue;
        }
        var v = Value(name);
        return v.Kind == MsgValueKind.Bool ? v.AsBool() : throw Bad($"argument '{name}' must be a boolean");
    }

    private MsgValue Value(string name)
    {
        _map.TryGetValue(name, out var v);
        return v;
    }

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "…";

    private static RpcException Bad(string message) => new(RpcErrorCodes.BadRequest, message);
}
