using System.Diagnostics;
using System.Text.RegularExpressions;
using Serving.Host.Tests.Interop;

namespace Serving.Host.Tests.Bench;

/// <summary>
/// Opens a page in headless Chromium (Debian's <c>chromium</c>, installed by scripts/setup.sh): the DOM after its scripts
/// ran (<c>--dump-dom</c>) and every console message (<c>--enable-logging=stderr</c> prints them as INFO:CONSOLE lines,
/// errors and uncaught exceptions included).
/// </summary>
internal static partial class HeadlessChromium
{
    /// <summary>The browser's path, or null when none is installed.</summary>
    public static string? Executable { get; } = Find();

    /// <summary>Why tests that need the browser are skipped.</summary>
    public const string Missing = "chromium is not installed (scripts/setup.sh installs Debian's chromium)";

    private static string? Find()
    {
        foreach (string name in new[] { "chromium", "chromium-browser", "google-chrome" })
            foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
                if (dir.Length > 0 && File.Exists(Path.Combine(dir, name)))
                    return Path.Combine(dir, name);
        return null;
    }

    private static ProcessStartInfo Start(string profile, params string[] args)
    {
        var psi = new ProcessStartInfo(Executable!);
        // --no-sandbox: the tests may run as root; a fresh profile: runs in parallel never share one.
        foreach (string a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions", $"--user-data-dir={profile}" })
            psi.ArgumentList.Add(a);
        foreach (string a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    /// <summary>The DOM of <paramref name="htmlPath"/> after load, and the console messages it logged.</summary>
    public static async Task<(string Dom, string[] Console)> DumpDomAsync(string htmlPath)
    {
        string profile = Path.Combine(Path.GetTempPath(), "serving-chromium-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (exit, dom, errors) = await ChildProcess.RunToEndAsync(
                Start(profile, "--enable-logging=stderr", "--v=0", "--dump-dom", new Uri(Path.GetFullPath(htmlPath)).AbsoluteUri), TimeSpan.FromSeconds(90));
            Assert.True(exit == 0, $"chromium exited {exit}: {errors}");
            return (dom, [.. errors.Split('\n').Where(l => ConsoleLine().IsMatch(l))]);
        }
        finally
        {
            try { Directory.Delete(profile, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Writes a PNG of <paramref name="htmlPath"/> as a 1280-wide window shows it.</summary>
    public static async Task ScreenshotAsync(string htmlPath, string png, int height = 2000)
    {
        string profile = Path.Combine(Path.GetTempPath(), "serving-chromium-" + Guid.NewGuid().ToString("N"));
        try
        {
            await ChildProcess.RunToEndAsync(Start(profile, $"--screenshot={png}", $"--window-size=1280,{height}", "--hide-scrollbars",
                new Uri(Path.GetFullPath(htmlPath)).AbsoluteUri), TimeSpan.FromSeconds(90));
        }
        finally
        {
            try { Directory.Delete(profile, recursive: true); } catch (IOException) { }
        }
    }

    [GeneratedRegex(@":CONSOLE[:\(]")]
    private static partial Regex ConsoleLine();
}
