namespace Serving.Host.Cli;

/// <summary>A plain left-aligned text table for terminal output (no colours, so logs and pipes stay clean).</summary>
internal sealed class TextTable(params string[] headers)
{
    private readonly List<string[]> _rows = [];

    public void Add(params string[] cells) => _rows.Add(cells);

    public void Write(TextWriter writer)
    {
        int n = headers.Length;
        var width = new int[n];
        foreach (var row in _rows.Prepend(headers))
            for (int i = 0; i < n && i < row.Length; i++)
                width[i] = Math.Max(width[i], row[i].Length);
        foreach (var row in _rows.Prepend(headers))
            writer.WriteLine(string.Join("  ", Enumerable.Range(0, n).Select(i => (i < row.Length ? row[i] : "").PadRight(i == n - 1 ? 0 : width[i]))).TrimEnd());
    }
}
