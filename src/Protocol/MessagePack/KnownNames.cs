using System.Reflection;
using System.Text;
using Serving.Protocol.Rpc;

namespace Serving.Protocol.MessagePack;

/// <summary>
/// The protocol's own names — <see cref="RpcMethods"/>, <see cref="RpcFields"/>, <see cref="RpcErrorCodes"/> — by
/// their UTF-8 bytes, so that decoding a method name or a map key returns the constant instead of allocating a new
/// string: most strs of a request or a streamed token are these (a generate request's six keys and its method
/// were half of its decode allocations). Looked up by length, then byte comparison; never hashed, so bytes a client
/// chooses cannot make it slow.
/// </summary>
internal static class KnownNames
{
    private static readonly (byte[] Utf8, string Name)[][] ByLength = Build();

    /// <summary>The constant spelled by <paramref name="utf8"/>, or null when it is not one of the names.</summary>
    public static string? Find(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Length >= ByLength.Length)
        {
            return null;
        }
        if (utf8.IsEmpty)
        {
            return string.Empty;
        }
        byte first = utf8[0];
        foreach (var (bytes, name) in ByLength[utf8.Length])
        {
            // The first byte rules out most names of the same length without a call.
            if (bytes[0] == first && utf8.SequenceEqual(bytes))
            {
                return name;
            }
        }
        return null;
    }

    private static (byte[], string)[][] Build()
    {
        var names = new[] { typeof(RpcMethods), typeof(RpcFields), typeof(RpcErrorCodes) }
            .SelectMany(t => t.GetFields(BindingFlags.Public | BindingFlags.Static))
            .Where(f => f.IsLiteral && f.FieldType == typeof(string))
            .Select(f => (string)f.GetRawConstantValue()!)
            .Append(string.Empty)
            .Distinct(StringComparer.Ordinal)
            .ToArray();
        int longest = names.Max(n => Encoding.UTF8.GetByteCount(n));
        var byLength = new (byte[], string)[longest + 1][];
        for (int length = 0; length <= longest; length++)
        {
            byLength[length] = names.Where(n => Encoding.UTF8.GetByteCount(n) == length)
                .Select(n => (Encoding.UTF8.GetBytes(n), n)).ToArray();
        }
        return byLength;
    }
}
