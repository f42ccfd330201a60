using System.Globalization;
using Serving.Abstractions;

namespace Serving.Backends.Cpu.Interop;

/// <summary>
/// The CPU package energy counter of Linux powercap (RAPL on Intel and on AMD Zen):
/// /sys/class/powercap/&lt;zone&gt;/energy_uj, a microjoule counter that wraps at max_energy_range_uj.
/// Reads are cumulative across wraps as long as the counter is read at least once per wrap period (minutes at
/// package power). A zone whose energy_uj the process may not read (root-only since Linux 5.10) still gives a meter:
/// its reads fail, so the bench reports "not readable" rather than pretending there is no counter. Nothing is ever
/// estimated.
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
    /// The first top-level zone of <paramref name="root"/> (intel-rapl:0 style: "package-N" on Intel and AMD) that has
    /// an energy_uj file: readable first, else one the process may not read (its meter's reads fail: "not readable").
    /// Null without powercap (VMs, other systems).
    /// </summary>
    public static RaplEnergyMeter? TryOpen(string root = PowercapRoot)
    {
        RaplEnergyMeter? unreadable = null;
        try
        {
            if (!Directory.Exists(root))
                return null;
            foreach (string zone in Directory.GetDirectories(root).Order(StringComparer.Ordinal))
            {
                string zoneName = Path.GetFileName(zone);
                // Top-level zones only ("intel-rapl:0"), not subzones ("intel-rapl:0:0" = core, uncore, dram).
                if (zoneName.Count(c => c == ':') != 1)
                    continue;
                string energy = Path.Combine(zone, "energy_uj");
                if (!Path.Exists(energy))
                    continue;
                string name = TryReadText(Path.Combine(zone, "name")) ?? zoneName;
                long range = TryReadLong(Path.Combine(zone, "max_energy_range_uj"), out long r) && r > 0 ? r : 0;
                var meter = new RaplEnergyMeter($"rapl:{name}", energy, range);
                if (TryReadLong(energy, out _))
                    return meter;
                unreadable ??= meter;
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return unreadable;
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
