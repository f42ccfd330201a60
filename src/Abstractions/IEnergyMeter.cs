namespace Serving.Abstractions;

/// <summary>
/// A real energy counter for a device (NVML total energy, RAPL energy_uj, hwmon, an external meter).
/// Backends expose one only where the hardware measures; nothing here is ever estimated.
/// </summary>
public interface IEnergyMeter
{
    /// <summary>Where the numbers come from ("rapl:package-0", "nvml").</summary>
    string Source { get; }

    /// <summary>
    /// Reads the cumulative energy in joules since an arbitrary origin, with counter wrap already handled.
    /// Returns false when the read failed (e.g. permission lost).
    /// </summary>
    bool TryReadJoules(out double joules);
}
