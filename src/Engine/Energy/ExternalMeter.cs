using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Serving.Abstractions;

namespace Serving.Engine.Energy;

/// <summary>
/// A meter outside the machine's own counters — a wall-socket meter as MLPerf Power uses, a PDU, a BMC — read through
/// a command (<c>--power-cmd</c>: run once per reading, its last line of output read) or a file (<c>--power-file</c>: its
/// last line read each time; a logger that appends or rewrites it keeps it current). A line is a number and a unit:
/// <c>W</c>/<c>mW</c>/<c>kW</c> (power: the meter is <see cref="EnergyMeterKind.PowerSamples"/>) or <c>J</c>/<c>mJ</c>/<c>kJ</c>/<c>Wh</c>
/// (cumulative energy: a <see cref="EnergyMeterKind.Counter"/>). The unit of the first reading fixes the kind; a bare
/// number is refused, as watts and joules cannot be told apart.
/// </summary>
public sealed partial class ExternalMeter : IEnergyMeter
{
    private readonly Func<string?> _read;

    private ExternalMeter(string source, Func<string?> read)
    {
        Source = source;
        _read = read;
        string? first = read();
        if (first is null) throw new InvalidOperationException($"{source}: gave no output");
        if (!TryParse(LastLine(first), out _, out EnergyMeterKind kind, out string? error))
            throw new InvalidOperationException($"{source}: {error}");
        Kind = kind;
    }

    /// <inheritdoc/>
    public string Source { get; }

    /// <inheritdoc/>
    public EnergyMeterKind Kind { get; }

    /// <summary>Opens a meter read by running <paramref name="command"/> with /bin/sh (or cmd.exe) once per reading;
    /// a run longer than <paramref name="timeout"/> is killed and counts as a failed read. Throws
    /// <see cref="InvalidOperationException"/> when the first run gives no reading, naming why.</summary>
    public static ExternalMeter FromCommand(string command, TimeSpan timeout)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(command);
        return new ExternalMeter($"external: {command}", () => RunCommand(command, timeout));
    }

    /// <summary>Opens a meter read from the last line of <paramref name="path"/>. Throws
    /// <see cref="InvalidOperationException"/> when the file cannot be read or its last line is no reading.</summary>
    public static ExternalMeter FromFile(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return new ExternalMeter($"external file: {path}", () =>
        {
            try
            {
                // Shared read: the meter's logger may be writing it.
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                if (stream.Length > 4096) stream.Seek(-4096, SeekOrigin.End);
                return new StreamReader(stream).ReadToEnd();
            }
            catch (IOException)
            {
                return null;
            }
            catch (UnauthorizedAccessException)
            {
                return null;
            }
        });
    }

    /// <inheritdoc/>
    public bool TryReadJoules(out double joules)
    {
        joules = 0;
        return Kind == EnergyMeterKind.Counter && TryRead(out joules);
    }

    /// <inheritdoc/>
    public bool TryReadWatts(out double watts)
    {
        watts = 0;
        return Kind == EnergyMeterKind.PowerSamples && TryRead(out watts);
    }

    private bool TryRead(out double value)
    {
        value = 0;
        string? text = _read();
        return text is not null && TryParse(LastLine(text), out value, out EnergyMeterKind kind, out _) && kind == Kind;
    }

    /// <summary>Parses "12.5 W", "3.1kW", "1234 J", "0.5 Wh" into watts or joules and the kind that unit means
    /// (units are case-sensitive: mW is milliwatts, MW is refused).</summary>
    public static bool TryParse(string line, out double value, out EnergyMeterKind kind, out string? error)
    {
        value = 0;
        kind = EnergyMeterKind.PowerSamples;
        string s = line.Trim();
        var match = Reading().Match(s);
        if (!match.Success || !double.TryParse(match.Groups[1].ValueSpan, NumberStyles.Float, CultureInfo.InvariantCulture, out double number) || !double.IsFinite(number))
        {
            error = $"'{Clip(s)}' is not a reading: expected a number and a unit (W, mW, kW, J, mJ, kJ, Wh)";
            return false;
        }
        string unit = match.Groups[2].Value;
        (double Scale, EnergyMeterKind Kind)? u = unit switch
        {
            "W" or "w" or "watt" or "watts" => (1, EnergyMeterKind.PowerSamples),
            "mW" => (1e-3, EnergyMeterKind.PowerSamples),
            "kW" => (1e3, EnergyMeterKind.PowerSamples),
            "J" or "j" or "joule" or "joules" => (1, EnergyMeterKind.Counter),
            "mJ" => (1e-3, EnergyMeterKind.Counter),
            "kJ" => (1e3, EnergyMeterKind.Counter),
            "Wh" => (3600, EnergyMeterKind.Counter),
            _ => null,
        };
        if (u is null)
        {
            error = unit.Length == 0
                ? $"'{Clip(s)}' has no unit: print watts as '12.5 W' or cumulative energy as '1234.5 J'"
                : $"unknown unit '{Clip(unit)}' in '{Clip(s)}' (W, mW, kW, J, mJ, kJ, Wh)";
            return false;
        }
        if (number < 0)
        {
            error = $"'{Clip(s)}' is negative";
            return false;
        }
        value = number * u.Value.Scale;
        kind = u.Value.Kind;
        error = null;
        return true;
    }

    [GeneratedRegex(@"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)$")]
    private static partial Regex Reading();

    private static string LastLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "";

    private static string Clip(string s) => s.Length <= 60 ? s : s[..60] + "…";

    private static string? RunCommand(string command, TimeSpan timeout)
    {
        var info = OperatingSystem.IsWindows()
            ? new ProcessStartInfo("cmd.exe") { ArgumentList = { "/c", command } }
            : new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", command } };
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        try
        {
            using var process = Process.Start(info);
            if (process is null) return null;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync(); // drained so a chatty command cannot block
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                return null;
            }
            process.WaitForExit();
            return process.ExitCode == 0 ? stdout.GetAwaiter().GetResult() : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
