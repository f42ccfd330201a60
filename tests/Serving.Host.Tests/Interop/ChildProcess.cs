using System.Diagnostics;
using System.Text;

namespace Serving.Host.Tests.Interop;

/// <summary>Runs a child process (an interop client, llama.cpp, the host CLI) to its end for a test.</summary>
internal static class ChildProcess
{
    /// <summary>
    /// Starts <paramref name="psi"/> with redirected UTF-8 streams, writes <paramref name="stdin"/> if given, and
    /// waits; fails the test if it runs past <paramref name="timeout"/> (killing it) or exits other than
    /// <paramref name="expectExit"/>. Returns its stdout.
    /// </summary>
    public static async Task<string> RunAsync(ProcessStartInfo psi, TimeSpan timeout, string? stdin = null, int expectExit = 0)
    {
        (int exit, string output, string errors) = await RunToEndAsync(psi, timeout, stdin);
        Assert.True(exit == expectExit, $"{psi.FileName} {string.Join(' ', psi.ArgumentList)} exited {exit} (expected {expectExit})\nstdout:\n{output}\nstderr:\n{errors}");
        return output;
    }

    /// <summary>As <see cref="RunAsync"/>, any exit status: returns it with stdout and stderr.</summary>
    public static async Task<(int Exit, string Stdout, string Stderr)> RunToEndAsync(ProcessStartInfo psi, TimeSpan timeout, string? stdin = null)
    {
        psi.RedirectStandardOutput = psi.RedirectStandardError = true;
        psi.RedirectStandardInput = stdin is not null;
        psi.StandardOutputEncoding = psi.StandardErrorEncoding = Encoding.UTF8;
        if (stdin is not null) psi.StandardInputEncoding = new UTF8Encoding(false);
        psi.UseShellExecute = false;
        string command = $"{psi.FileName} {string.Join(' ', psi.ArgumentList)}";
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {psi.FileName}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{command} did not finish within {timeout.TotalSeconds} s; stderr: {await stderr}");
        }
        return (process.ExitCode, await stdout, await stderr);
    }
}
