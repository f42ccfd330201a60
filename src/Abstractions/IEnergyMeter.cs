namespace Serving.Abstractions;

/// <summary>What an <see cref="IEnergyMeter"/> reads (contract 2.1).</summary>
public enum EnergyMeterKind
{
    /// <summary>A cumulative energy counter (RAPL energy_uj, NVML total energy, hwmon energy1_input):
    /// <see cref="IEnergyMeter.TryReadJoules"/> answers; energy over an interval is the difference of two reads.</summary>
    Counter,

    /// <summary>A power sensor without a counter (hwmon power1_average, a wall meter that prints watts):
    /// <see cref="IEnergyMeter.TryReadWatts"/> answers with the current (or the sensor's own short-average) power;
    /// energy over an interval is the host's integral of samples it takes during the interval, and is reported as
    /// power samples, never as a counter reading.</summary>
    PowerSamples,
}

/// <summary>
/// A real energy counter or power sensor for a device (NVML total energy, RAPL energy_uj, hwmon, an external meter).
/// Backends expose one only where the hardware measures; nothing here is ever estimated. A contract 2.0 meter
/// implements <see cref="Source"/> and <see cref="TryReadJoules"/> only and is a <see cref="EnergyMeterKind.Counter"/>
/// (the members added in 2.1 have defaults).
/// </summary>
public interface IEnergyMeter
{
    /// <summary>Where the numbers come from ("rapl:package-0", "nvml", "hwmon:amdgpu power1_average").</summary>
    string Source { get; }

    /// <summary>
    /// Reads the cumulative energy in joules since an arbitrary origin, with counter wrap already handled.
    /// Returns false when the read failed (e.g. permission lost), and always for a
    /// <see cref="EnergyMeterKind.PowerSamples"/> meter, which has no counter.
    /// </summary>
    bool TryReadJoules(out double joules);

    /// <summary>What this meter reads (2.1; a 2.0 meter is a <see cref="EnergyMeterKind.Counter"/>).</summary>
    EnergyMeterKind Kind => EnergyMeterKind.Counter;

    /// <summary>
    /// Reads the present power in watts (2.1). Only a <see cref="EnergyMeterKind.PowerSamples"/> meter answers; a
    /// counter returns false (the default). Returns false when the read failed.
    /// </summary>
    bool TryReadWatts(out double watts)
    {
        watts = 0;
        return false;
    }
}
