using Serving.Abstractions;

namespace Serving.Backends.Cuda.Interop;

/// <summary>
/// The GPU's own energy counter through NVML (nvmlDeviceGetTotalEnergyConsumption: millijoules since the driver loaded,
/// Volta and later). Exposed as the device's <see cref="IEnergyMeter"/> only where the GPU has that counter; a GPU with
/// only power readings gets no meter (a power sample is not energy, and integrating samples would be an estimate):
/// <see cref="ReadPowerWatts"/> reports those readings as what they are.
/// </summary>
internal sealed class NvmlEnergyMeter : IEnergyMeter
{
    private readonly INvml _nvml;
    private readonly nint _device;
    private readonly object _gate = new();
    private ulong _last;
    private double _joules;

    private NvmlEnergyMeter(INvml nvml, nint device, ulong first)
    {
        _nvml = nvml;
        _device = device;
        _last = first;
        _joules = first / 1000.0;
    }

    /// <inheritdoc/>
    public string Source => "nvml";

    /// <summary>A meter for <paramref name="device"/> when it has the total-energy counter, else null.</summary>
    public static NvmlEnergyMeter? TryCreate(INvml nvml, nint device)
        => nvml.TotalEnergy(device, out ulong first) == NvmlReturn.Success ? new NvmlEnergyMeter(nvml, device, first) : null;

    /// <summary>What the device offers, as a line for <c>devices</c>.</summary>
    public static string Describe(INvml nvml, nint device)
    {
        if (nvml.TotalEnergy(device, out _) == NvmlReturn.Success)
            return "energy: NVML total-energy counter (the device's energy meter)";
        return ReadPowerWatts(nvml, device) is double w
            ? $"energy: no total-energy counter on this GPU; NVML power readings only ({w:0.0} W now, a sample), so no energy meter"
            : "energy: NVML reports neither a total-energy counter nor power readings for this GPU";
    }

    /// <summary>The current power draw in watts (an instantaneous NVML sample, never an energy counter), or null.</summary>
    public static double? ReadPowerWatts(INvml nvml, nint device)
        => nvml.Power(device, out uint milliwatts) == NvmlReturn.Success ? milliwatts / 1000.0 : null;

    /// <inheritdoc/>
    public bool TryReadJoules(out double joules)
    {
        if (_nvml.TotalEnergy(_device, out ulong raw) != NvmlReturn.Success)
        {
            joules = 0;
            return false;
        }
        lock (_gate)
        {
            // The counter is 64-bit millijoules and does not wrap; a smaller reading means the driver reloaded and
            // restarted it: count from the new origin rather than subtract.
            _joules += raw >= _last ? (raw - _last) / 1000.0 : raw / 1000.0;
            _last = raw;
            joules = _joules;
        }
        return true;
    }
}
