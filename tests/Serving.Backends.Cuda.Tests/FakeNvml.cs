using Serving.Backends.Cuda.Interop;

namespace Serving.Backends.Cuda.Tests;

/// <summary>NVML without a GPU: the counter readings and power samples a test scripts, one per call.</summary>
internal sealed class FakeNvml : INvml
{
    private int _energyReads, _powerReads;

    public string? Driver { get; init; }

    /// <summary>Successive total-energy readings (the last repeats); empty = NVML_ERROR_NOT_SUPPORTED.</summary>
    public ulong[] EnergyMillijoules { get; init; } = [];

    /// <summary>Successive power samples; empty = not supported.</summary>
    public uint[] PowerMilliwatts { get; init; } = [];

    /// <summary>Read number (0-based) at which the energy read fails with NVML_ERROR_NO_PERMISSION, or −1.</summary>
    public int FailEnergyAt { get; init; } = -1;

    public string? DriverVersion => Driver;

    public bool TryGetDevice(string uuid, out nint device)
    {
        device = 42;
        return true;
    }

    public NvmlReturn TotalEnergy(nint device, out ulong millijoules)
    {
        int i = _energyReads++;
        millijoules = 0;
        if (EnergyMillijoules.Length == 0) return NvmlReturn.NotSupported;
        if (i == FailEnergyAt) return NvmlReturn.NoPermission;
        millijoules = EnergyMillijoules[Math.Min(i, EnergyMillijoules.Length - 1)];
        return NvmlReturn.Success;
    }

    public NvmlReturn Power(nint device, out uint milliwatts)
    {
        int i = _powerReads++;
        milliwatts = 0;
        if (PowerMilliwatts.Length == 0) return NvmlReturn.NotSupported;
        milliwatts = PowerMilliwatts[Math.Min(i, PowerMilliwatts.Length - 1)];
        return NvmlReturn.Success;
    }
}
