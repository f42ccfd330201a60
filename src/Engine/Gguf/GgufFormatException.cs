namespace Serving.Engine.Gguf;

/// <summary>
/// A GGUF file (or its metadata) is malformed or uses something this engine does not read. Names the field that
/// was wrong and the absolute file offset where it was read, so a user can find it with a hex dump.
/// </summary>
public sealed class GgufFormatException : Exception
{
    /// <summary>Creates the exception; the message becomes "GGUF &lt;field&gt; at offset &lt;offset&gt;: &lt;detail&gt;".</summary>
    /// <param name="field">What was being read: "version", "tensor_count", a metadata key, "tensor 'blk.0.attn_q.weight' dims[1]".</param>
    /// <param name="offset">Absolute byte offset in the file of the bad field (-1 when not tied to one place).</param>
    /// <param name="detail">What is wrong, with the numbers involved.</param>
    /// <param name="source">The file path, when known; prefixed to the message.</param>
    public GgufFormatException(string field, long offset, string detail, string? source = null)
        : base(Format(field, offset, detail, source))
    {
        Field = field;
        Offset = offset;
        Detail = detail;
        FilePath = source;
    }

    /// <summary>The field that was wrong (a header field, metadata key or tensor field).</summary>
    public string Field { get; }

    /// <summary>Absolute byte offset in the file where the field starts; -1 when not tied to one place.</summary>
    public long Offset { get; }

    /// <summary>What is wrong, without the field/offset prefix.</summary>
    public string Detail { get; }

    /// <summary>The file the error came from, or null (in-memory parse).</summary>
    public string? FilePath { get; }

    /// <summary>The same error attributed to <paramref name="path"/>.</summary>
    internal GgufFormatException WithSource(string path) => new(Field, Offset, Detail, path);

    private static string Format(string field, long offset, string detail, string? source)
    {
        string where = offset >= 0 ? $" at offset {offset}" : "";
        string prefix = source is null ? "" : source + ": ";
        return $"{prefix}GGUF {field}{where}: {detail}";
    }
}
