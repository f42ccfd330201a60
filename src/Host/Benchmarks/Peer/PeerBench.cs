using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Serving.Host.Benchmarks.Peer;

/// <summary>One measurement of one engine on one file: prompt and decode tokens/s per repetition, and peak RSS.</summary>
internal sealed record PeerSample(double[] PromptTokensPerSecond, double[] DecodeTokensPerSecond, long PeakRssBytes, string? Note = null);

/// <summary>
/// Runs a measurement in a child process and reads its peak resident set size: the child's own VmHWM where it reports
/// it (Serving's child does, exactly), else the largest VmHWM read from <c>/proc/PID/status</c> while it ran (sampled
/// every 20 ms; VmHWM is a high-water mark, so the last reading before exit misses only growth in the final 20 ms).
/// </summary>
internal static class ChildProcess
{
    /// <summary>Runs <paramref name="file"/> with <paramref name="arguments"/>; returns exit code, stdout, stderr and the sampled peak RSS (0 where unreadable).</summary>
    public static (int ExitCode, string Stdout, string Stderr, long PeakRssBytes) Run(string file, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in arguments) info.ArgumentList.Add(a);
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        long peak = 0;
        string status = $"/proc/{process.Id}/status";
        var clock = Stopwatch.StartNew();
        do
        {
            // Read first, then wait: a child that lives only a moment is still read once.
            peak = Math.Max(peak, ReadStatusKiB(status, "VmHWM:") * 1024);
            if (clock.Elapsed > timeout)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                throw new TimeoutException($"{Path.GetFileName(file)} ran longer than {timeout.TotalMinutes:0} min and was stopped");
            }
        }
        while (!process.WaitForExit(20));
        process.WaitForExit(); // drains the redirected streams
        return (process.ExitCode, stdout.Result, stderr.Result, peak);
    }

    /// <summary>A "Key:  N kB" line of a /proc status file in KiB; 0 when the file or key is missing (the process ended, or not Linux).</summary>
    public static long ReadStatusKiB(string path, string key)
    {
        try
        {
            foreach (string line in File.ReadLines(path))
                if (line.StartsWith(key, StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(key.Length).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return 0;
    }
}

/// <summary>
/// The peer: the user's own <c>llama-bench</c> binary (llama.cpp; nothing of it is in this repository), run as
/// <c>llama-bench -m FILE -t THREADS -mmp 0|1 -p PROMPT -n GEN -r REPS -o json</c>. Its JSON is an array of tests;
/// the one with <c>n_prompt</c> &gt; 0 and <c>n_gen</c> = 0 is the prompt test, the one with <c>n_gen</c> &gt; 0 and
/// <c>n_prompt</c> = 0 the decode test; each gives <c>samples_ts</c> (tokens/s per repetition) or at least <c>avg_ts</c>.
/// </summary>
internal static class LlamaBench
{
    /// <summary>The arguments for one run.</summary>
    public static string[] Arguments(string model, int threads, bool mmap, int prompt, int gen, int repetitions) =>
        ["-m", model, "-t", threads.ToString(CultureInfo.InvariantCulture), "-mmp", mmap ? "1" : "0",
         "-p", prompt.ToString(CultureInfo.InvariantCulture), "-n", gen.ToString(CultureInfo.InvariantCulture),
         "-r", repetitions.ToString(CultureInfo.InvariantCulture), "-o", "json"];

    /// <summary>Runs <paramref name="binary"/> once on <paramref name="model"/>. Throws with llama-bench's own message when it fails.</summary>
    public static PeerSample Run(string binary, string model, int threads, bool mmap, int prompt, int gen, int repetitions, TimeSpan timeout)
    {
        var (code, stdout, stderr, peak) = ChildProcess.Run(binary, Arguments(model, threads, mmap, prompt, gen, repetitions), timeout);
        if (code != 0)
            throw new InvalidOperationException($"{Path.GetFileName(binary)} exited with {code}: {Last(stderr)}");
        var (pp, tg) = Parse(stdout);
        return new PeerSample(pp, tg, peak);
    }

    /// <summary>Prompt and decode tokens/s per repetition from llama-bench's JSON output. Throws <see cref="FormatException"/> naming what is missing.</summary>
    public static (double[] Prompt, double[] Decode) Parse(string json)
    {
        int start = json.IndexOf('[', StringComparison.Ordinal);
        if (start < 0)
            throw new FormatException("llama-bench printed no JSON array (was -o json passed?)");
        using var doc = JsonDocument.Parse(json.AsMemory(start));
        double[]? pp = null, tg = null;
        foreach (JsonElement test in doc.RootElement.EnumerateArray())
        {
            long nPrompt = test.TryGetProperty("n_prompt", out var p) ? p.GetInt64() : 0;
            long nGen = test.TryGetProperty("n_gen", out var g) ? g.GetInt64() : 0;
            double[] rates = test.TryGetProperty("samples_ts", out var s) && s.ValueKind == JsonValueKind.Array && s.GetArrayLength() > 0
                ? [.. s.EnumerateArray().Select(v => v.GetDouble())]
                : test.TryGetProperty("avg_ts", out var a) ? [a.GetDouble()] : throw new FormatException("a llama-bench test has neither samples_ts nor avg_ts");
            if (nPrompt > 0 && nGen == 0) pp = rates;
            else if (nGen > 0 && nPrompt == 0) tg = rates;
        }
        return (pp ?? throw new FormatException("llama-bench's JSON has no prompt test (n_prompt > 0, n_gen = 0)"),
                tg ?? throw new FormatException("llama-bench's JSON has no decode test (n_gen > 0, n_prompt = 0)"));
    }

    private static string Last(string text)
    {
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "(no message)" : string.Join(" | ", lines.TakeLast(3));
    }
}

/// <summary>Medians, as the comparison reports them (robust to one slow round on a shared machine).</summary>
internal static class Median
{
    /// <summary>The median of <paramref name="values"/>; NaN when empty.</summary>
    public static double Of(IEnumerable<double> values)
    {
        double[] v = [.. values.Order()];
        if (v.Length == 0) return double.NaN;
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }
}
