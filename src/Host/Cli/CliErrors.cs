using Spectre.Console;

namespace Serving.Host.Cli;

/// <summary>How commands report a user error: one line on stderr, exit code 2.</summary>
internal static class CliErrors
{
    /// <summary>Writes "error: <paramref name="message"/>" on stderr (the word in red on a terminal); returns 2, the exit code.</summary>
    public static int Fail(string message)
    {
        Terminal.Error.MarkupLine($"[red]error:[/] {Markup.Escape(message)}");
        return 2;
    }
}
