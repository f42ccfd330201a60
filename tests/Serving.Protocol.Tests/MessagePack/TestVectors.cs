using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Serving.Protocol.MessagePack;

namespace Serving.Protocol.Tests.MessagePack;

/// <summary>
/// The kawanet msgpack-test-suite (tests/data/msgpack, MIT; source and format in its README): groups of "exams",
/// each naming a value and every accepted encoding of it. Located from the repository root, found as the folder
/// holding Serving.sln above the test binaries (the search also starts at this source file, since builds may use an
/// artifacts path outside the repository). Missing data fails the tests, never skips them.
/// </summary>
internal static class TestVectors
{
    public const string RelativePath = "tests/data/msgpack/kawanet-msgpack-test-suite/dist/msgpack-test-suite.json";

    private static readonly Lazy<(JsonDocument? Doc, string Where)> Loaded = new(() => Load());

    public static string ExpectedLocation => Loaded.Value.Where;

    /// <summary>The exams as (group, index) pairs; one ("missing", -1) entry when the file is absent, so the test fails.</summary>
    public static IEnumerable<object[]> ExamIds()
    {
        var doc = Loaded.Value.Doc;
        if (doc is null)
        {
            yield return ["missing", -1];
            yield break;
        }
        foreach (var group in doc.RootElement.EnumerateObject())
        {
            for (int i = 0; i < group.Value.GetArrayLength(); i++)
            {
                yield return [group.Name, i];
            }
        }
    }

    /// <summary>Every encoding of every exam, as bytes.</summary>
    public static IEnumerable<byte[]> AllEncodings()
    {
        var doc = Loaded.Value.Doc ?? throw new FileNotFoundException($"MessagePack test vectors not found: {ExpectedLocation}");
        foreach (var group in doc.RootElement.EnumerateObject())
        {
            foreach (var exam in group.Value.EnumerateArray())
            {
                foreach (var hex in exam.GetProperty("msgpack").EnumerateArray())
                {
                    yield return ParseHex(hex.GetString()!);
                }
            }
        }
    }

    public static JsonElement Exam(string group, int index)
    {
        var doc = Loaded.Value.Doc ?? throw new FileNotFoundException($"MessagePack test vectors not found: {ExpectedLocation}");
        return doc.RootElement.GetProperty(group)[index];
    }

    /// <summary>"cd-00-01" → bytes; "" → empty.</summary>
    public static byte[] ParseHex(string hyphenated) =>
        hyphenated.Length == 0 ? [] : Convert.FromHexString(hyphenated.Replace("-", "", StringComparison.Ordinal));

    public static string ToHyphenatedHex(ReadOnlySpan<byte> bytes) =>
        string.Join('-', Convert.ToHexString(bytes).ToLowerInvariant().Chunk(2).Select(c => new string(c)));

    /// <summary>The exam's expected values (one per value key other than "msgpack").</summary>
    public static List<MsgValue> ExpectedValues(JsonElement exam)
    {
        var values = new List<MsgValue>();
        foreach (var property in exam.EnumerateObject())
        {
            switch (property.Name)
            {
                case "msgpack": break;
                case "nil": values.Add(MsgValue.Nil); break;
                case "bool": values.Add(MsgValue.FromBool(property.Value.GetBoolean())); break;
                case "binary": values.Add(MsgValue.FromBinary(ParseHex(property.Value.GetString()!))); break;
                case "bignum":
                {
                    string s = property.Value.GetString()!;
                    values.Add(s.StartsWith('-')
                        ? MsgValue.FromInt64(long.Parse(s, CultureInfo.InvariantCulture))
                        : MsgValue.FromUInt64(ulong.Parse(s, CultureInfo.InvariantCulture)));
                    break;
                }
                case "ext":
                    values.Add(MsgValue.FromExt((sbyte)property.Value[0].GetInt32(), ParseHex(property.Value[1].GetString()!)));
                    break;
                case "timestamp":
                    values.Add(MsgValue.FromTimestamp(property.Value[0].GetInt64(), property.Value[1].GetUInt32()));
                    break;
                case "number" or "string" or "array" or "map":
                    values.Add(FromJson(property.Value));
                    break;
                default:
                    throw new InvalidDataException($"Unknown value key '{property.Name}' in the test suite");
            }
        }
        return values;
    }

    /// <summary>Plain JSON → value: integral numbers become Int, others Float64.</summary>
    public static MsgValue FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null => MsgValue.Nil,
        JsonValueKind.True => MsgValue.FromBool(true),
        JsonValueKind.False => MsgValue.FromBool(false),
        JsonValueKind.String => MsgValue.FromString(e.GetString()!),
        JsonValueKind.Number => e.TryGetInt64(out long l) ? MsgValue.FromInt64(l) : MsgValue.FromFloat64(e.GetDouble()),
        JsonValueKind.Array => MsgValue.FromArray(e.EnumerateArray().Select(FromJson).ToArray()),
        JsonValueKind.Object => MsgValue.FromMap(e.EnumerateObject()
            .Select(p => new KeyValuePair<MsgValue, MsgValue>(MsgValue.FromString(p.Name), FromJson(p.Value))).ToArray()),
        _ => throw new InvalidDataException($"Unexpected JSON {e.ValueKind}"),
    };

    /// <summary>
    /// The suite's "some type matches" rule: numbers compare by value across int and float encodings (a float
    /// decoding of 1 equals the integer 1); everything else structurally.
    /// </summary>
    public static bool Matches(MsgValue decoded, MsgValue expected)
    {
        if (IsNumber(decoded) && IsNumber(expected))
        {
            if (decoded.IsInteger && expected.IsInteger)
            {
                return decoded == expected;
            }
            decoded.TryGetDouble(out double a);
            expected.TryGetDouble(out double b);
            return a == b;
        }
        if (decoded.Kind != expected.Kind)
        {
            return false;
        }
        if (decoded.Kind == MsgValueKind.Array)
        {
            var x = decoded.AsArray();
            var y = expected.AsArray();
            if (x.Length != y.Length) return false;
            for (int i = 0; i < x.Length; i++)
            {
                if (!Matches(x[i], y[i])) return false;
            }
            return true;
        }
        if (decoded.Kind == MsgValueKind.Map)
        {
            var x = decoded.AsMap();
            var y = expected.AsMap();
            if (x.Length != y.Length) return false;
            for (int i = 0; i < x.Length; i++)
            {
                if (!Matches(x[i].Key, y[i].Key) || !Matches(x[i].Value, y[i].Value)) return false;
            }
            return true;
        }
        return decoded == expected;
    }

    private static bool IsNumber(MsgValue v) =>
        v.Kind is MsgValueKind.Int or MsgValueKind.UInt or MsgValueKind.Float32 or MsgValueKind.Float64;

    private static (JsonDocument?, string) Load([CallerFilePath] string sourceFile = "")
    {
        string? root = FindRoot(AppContext.BaseDirectory) ?? FindRoot(Path.GetDirectoryName(sourceFile));
        if (root is null)
        {
            return (null, $"<repository root holding Serving.sln, not found above {AppContext.BaseDirectory} or {sourceFile}>/{RelativePath}");
        }
        string path = Path.Combine(root, RelativePath);
        return File.Exists(path) ? (JsonDocument.Parse(File.ReadAllBytes(path)), path) : (null, path);
    }

    private static string? FindRoot(string? start)
    {
        for (var dir = start is null ? null : new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Serving.sln")))
            {
                return dir.FullName;
            }
        }
        return null;
    }
}
