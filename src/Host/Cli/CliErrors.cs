namespace Serving.Host.Cli;

/// <summary>How commands report a user error: one line on stderr, exit code 2.</summary>
internal static class CliErrors
{
    /// <summary>
    /// Writes "error: <paramref name="message"/>" on stderr and returns 2, the exit code. Plain text, not Spectre
    /// markup: a coloured word is not worth the ~250 ms Spectre's first markup line costs a process whose JIT fully
    /// optimizes every method (Serving.Host.csproj).
    /// </summary>
    public static int Fail(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        return 2;
    }
}
