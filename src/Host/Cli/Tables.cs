using Spectre.Console;

namespace Serving.Host.Cli;

/// <summary>
/// Result tables (Spectre.Console): rounded borders on a terminal; elsewhere (a pipe, a file, CI) borderless columns of
/// plain text, one row a line, for grep, cut and awk. (Spectre's Markdown border was tried for pipes: it writes a line
/// of blanks above and below every table.)
/// </summary>
internal static class Tables
{
    /// <summary>
    /// A table with these column headers; on a terminal too narrow for it, Spectre wraps the widest cells. With
    /// <paramref name="numeric"/>, every column after the first is right-aligned, so figures line up by their units.
    /// </summary>
    public static Table Create(string[] headers, bool numeric = false)
    {
        var table = new Table();
        for (int i = 0; i < headers.Length; i++)
        {
            var column = new TableColumn(new Text(headers[i], new Style(decoration: Decoration.Bold)));
            // No NoWrap(): a table whose unwrappable columns exceed the terminal's width prints as a lone "…".
            table.AddColumn(numeric && i > 0 ? column.RightAligned() : column);
        }
        return table;
    }

    /// <summary>Adds a row of plain text cells (never read as Spectre markup, so "[1]" or a path prints as it is).</summary>
    public static Table AddCells(this Table table, params string[] cells) => table.AddRow(cells.Select(c => new Text(c)));

    /// <summary>Writes <paramref name="table"/> to <paramref name="console"/> in the style for where the console goes.</summary>
    public static void WriteTable(this IAnsiConsole console, Table table)
    {
        if (console.Profile.Out.IsTerminal)
        {
            console.Write(table.Border(TableBorder.Rounded));
            return;
        }
        // Two blanks between columns (one reads "step ms  tokens/s" as three headers); Spectre pads the last column to
        // its width, and trailing blanks only make noise in logs and diffs.
        foreach (var column in table.Columns) column.Padding = new Padding(0, 0, 2, 0);
        var text = new StringWriter();
        Terminal.For(text).Write(table.Border(TableBorder.None));
        foreach (string line in text.ToString().Split('\n'))
            if (line.TrimEnd() is { Length: > 0 } trimmed)
                console.Profile.Out.Writer.WriteLine(trimmed);
    }
}
