namespace Serving.Host.Commands;

/// <summary>How commands report a user error: one line on stderr, exit code 2.</summary>
internal static class CliErrors
{
    public static int Fail(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        return 2;
    }
}
