using Spectre.Console;

namespace Serving.Host.Cli;

/// <summary>
/// The consoles commands write tables, progress and errors through (Spectre.Console): <see cref="Out"/> on stdout for
/// results, <see cref="Error"/> on stderr for progress and messages. Each is set up for where its stream goes: on a
/// terminal colours, live redraw and box tables; on a pipe or a file (CI, scripts, tests) no escape codes, no redraw
/// and no wrapping at an assumed 80 columns, so every line stays whole for grep and diff.
/// Cost, measured against the hand-written table and bar it replaced (2-core build machine, medians of 9 runs, same
/// session): Spectre's code is compiled on first use, fully optimized (the host turns quick JIT off for its kernels),
/// which adds ~0.3 s to <c>devices</c> (0.26 → 0.58 s) and ~0.5 s to a 64-token <c>generate</c> under a terminal
/// (1.6 → 2.2 s; none on a pipe, 1.27 s both); tokens/s are unchanged. Kept: it is paid once per command, never per
/// token. Error lines stay plain <see cref="Console.Error"/> writes (see <see cref="CliErrors"/>).
/// </summary>
internal static class Terminal
{
    /// <summary>
    /// Width given to a console that is not a terminal. Spectre wraps at the console's width and assumes 80 columns
    /// when there is none; a device's error line or a wide table would be cut into pieces in a log.
    /// </summary>
    private const int UnwrappedWidth = 1 << 16;

    private static readonly Lazy<IAnsiConsole> StdOut = new(() => Create(Console.Out, isTerminal: !Console.IsOutputRedirected));
    private static readonly Lazy<IAnsiConsole> StdErr = new(() => Create(Console.Error, isTerminal: !Console.IsErrorRedirected));

    /// <summary>Stdout: results (tables).</summary>
    public static IAnsiConsole Out => StdOut.Value;

    /// <summary>Stderr: progress bars and error lines, which must never mix into piped results.</summary>
    public static IAnsiConsole Error => StdErr.Value;

    /// <summary>
    /// The console for <paramref name="writer"/>: <see cref="Out"/> or <see cref="Error"/> for the process's own streams,
    /// otherwise a new one over the writer (a file, a string), which is never a terminal.
    /// </summary>
    public static IAnsiConsole For(TextWriter writer) =>
        ReferenceEquals(writer, Console.Out) ? Out : ReferenceEquals(writer, Console.Error) ? Error : Create(writer, isTerminal: false);

    private static IAnsiConsole Create(TextWriter writer, bool isTerminal)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            // Spectre's detection reads $TERM for a writer that is not stdout or stderr, so a file would get escape codes.
            Ansi = isTerminal ? AnsiSupport.Detect : AnsiSupport.No,
            // Spectre's detection calls every stream non-interactive when any of stdin, stdout or stderr is redirected;
            // the progress bar on stderr should still redraw in place when only the results go to a file.
            Interactive = isTerminal ? InteractionSupport.Yes : InteractionSupport.No,
            // The CI enrichers turn escape codes on for some CI logs; off a terminal the output stays plain text.
            Enrichment = new ProfileEnrichment { UseDefaultEnrichers = isTerminal },
        });
        if (!isTerminal) console.Profile.Width = UnwrappedWidth;
        return console;
    }
}
