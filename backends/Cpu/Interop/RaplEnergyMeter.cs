using System.Globalization;
using Serving.Abstractions;

namespace Serving.Backends.Cpu.Interop;

/// <summary>
/// The CPU package energy counter of Linux powercap (RAPL on Intel and on AMD Zen):
/// /sys/class/powercap/&lt;zone&gt;/energy_uj, a microjoule counter that wraps at max_energy_range_uj.
/// Reads are cumulative across wraps as long as the counter is read at least once per wrap period (minutes at
/// package power). Exposed only when the file is readable; nothing is ever estimated.
/// </summary>
internal sealed class RaplEnergyMeter : IEnergyMeter
{
    private const string PowercapRoot = "/sys/class/powercap";

    private readonly string _energyPath;
    private readonly long _rangeMicrojoules;
    private readonly object _gate = new();
    private long _lastRaw = -1;
    private double _totalMicrojoules;

    /// <summary>Creates a meter over one zone's files.</summary>
    internal RaplEnergyMeter(string source, string energyPath, long rangeMicrojoules)
    {
        Source = source;
        _energyPath = energyPath;
        _rangeMicrojoules = rangeMicrojoules;
    }

    /// <inheritdoc/>
    public string Source { get; }

    /// <summary>
    /// Finds the first readable package zone (intel-rapl:0 style, named "package-N"), or returns null.
    /// </summary>
    public static RaplEnergyMeter? TryOpen()
    {
        try
        {
            if (!Directory.Exists(PowercapRoot))
                return null;
            foreach (string zone in Directory.GetDirectories(PowercapRoot).Order(StringComparer.Ordinal))
            {
                string zoneName = Path.GetFileName(zone);
                // Top-level zones only ("intel-rapl:0"), not subzones ("intel-rapl:0:0" = core, uncore, dram).
                if (zoneName.Count(c => c == ':') != 1)
                    continue;
                string energy = Path.Combine(zone, "energy_uj");
                if (!TryReadLong(energy, out _))
                    continue;
                string name = TryReadText(Path.Combine(zone, "name")) ?? zoneName;
                long range = TryReadLong(Path.Combine(zone, "max_energy_range_uj"), out long r) && r > 0 ? r : 0;
                return new RaplEnergyMeter($"rapl:{name}", energy, range);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return null;
    }

    /// <inheritdoc/>
    public bool TryReadJoules(out double joules)
    {
        if (!TryReadLong(_energyPath, out long raw))
        {
            joules = 0;
            return false;
        }
        lock (_gate)
        {
            Accumulate(raw);
            joules = _totalMicrojoules / 1e6;
        }
        return true;
    }

    /// <summary>Adds the step from the last raw reading; a smaller reading means the counter wrapped once.</summary>
    internal void Accumulate(long raw)
    {
        if (_lastRaw >= 0)
        {
            long delta = raw - _lastRaw;
            if (delta < 0)
                delta += _rangeMicrojoules > 0 ? _rangeMicrojoules : 0;
            // Without a known range a wrap cannot be measured: count nothing rather than guess.
            _totalMicrojoules += Math.Max(0, delta);
        }
        _lastRaw = raw;
    }

    private static bool TryReadLong(string path, out long value)
    {
        value = 0;
        string? text = TryReadText(path);
        return text is not null && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    private static string? TryReadText(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
