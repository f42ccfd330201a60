using System.Runtime.InteropServices;
using System.Text;

namespace Serving.Backends.Cuda.Interop;

/// <summary>NVML's answers the backend uses (nvmlReturn_t values).</summary>
internal enum NvmlReturn
{
    /// <summary>NVML_SUCCESS.</summary>
    Success = 0,

    /// <summary>NVML_ERROR_NOT_SUPPORTED: the device lacks the feature (e.g. no total-energy counter before Volta).</summary>
    NotSupported = 3,

    /// <summary>NVML_ERROR_NO_PERMISSION.</summary>
    NoPermission = 4,

    /// <summary>NVML_ERROR_GPU_IS_LOST.</summary>
    GpuIsLost = 15,
}

/// <summary>The NVML calls the backend makes, behind an interface so the meter's arithmetic is tested with a fake.</summary>
internal interface INvml
{
    /// <summary>nvmlSystemGetDriverVersion ("550.54.15"), or null.</summary>
    string? DriverVersion { get; }

    /// <summary>nvmlDeviceGetHandleByUUID.</summary>
    bool TryGetDevice(string uuid, out nint device);

    /// <summary>nvmlDeviceGetTotalEnergyConsumption: millijoules since the driver loaded.</summary>
    NvmlReturn TotalEnergy(nint device, out ulong millijoules);

    /// <summary>nvmlDeviceGetPowerUsage: the current draw in milliwatts (a sample, not a counter).</summary>
    NvmlReturn Power(nint device, out uint milliwatts);
}

/// <summary>NVML through libnvidia-ml.so.1 (nvml.dll), bound at run time; <see cref="TryOpen"/> returns null without it.</summary>
internal sealed unsafe class Nvml : INvml
{
    private static readonly Lazy<Nvml?> Shared = new(Load);

    private readonly delegate* unmanaged<byte*, uint, int> _driverVersion;
    private readonly delegate* unmanaged<byte*, nint*, int> _byUuid;
    private readonly delegate* unmanaged<nint, ulong*, int> _energy;
    private readonly delegate* unmanaged<nint, uint*, int> _power;

    private Nvml(nint lib)
    {
        _driverVersion = (delegate* unmanaged<byte*, uint, int>)NativeLibrary.GetExport(lib, "nvmlSystemGetDriverVersion");
        _byUuid = (delegate* unmanaged<byte*, nint*, int>)NativeLibrary.GetExport(lib, "nvmlDeviceGetHandleByUUID");
        _energy = (delegate* unmanaged<nint, ulong*, int>)NativeLibrary.GetExport(lib, "nvmlDeviceGetTotalEnergyConsumption");
        _power = (delegate* unmanaged<nint, uint*, int>)NativeLibrary.GetExport(lib, "nvmlDeviceGetPowerUsage");
    }

    /// <summary>The library's name on this OS.</summary>
    public static string LibraryName => OperatingSystem.IsWindows() ? "nvml.dll" : "libnvidia-ml.so.1";

    /// <summary>NVML, initialised once per process, or null when the library is missing or nvmlInit fails.</summary>
    public static Nvml? TryOpen() => Shared.Value;

    /// <inheritdoc/>
    public string? DriverVersion
    {
        get
        {
            byte* text = stackalloc byte[96];
            return _driverVersion(text, 96) == 0 ? Encoding.ASCII.GetString(MemoryMarshal.CreateReadOnlySpanFromNullTerminated(text)) : null;
        }
    }

    /// <inheritdoc/>
    public bool TryGetDevice(string uuid, out nint device)
    {
        byte[] name = Encoding.ASCII.GetBytes(uuid + "\0");
        nint handle = 0;
        int r;
        fixed (byte* p = name)
            r = _byUuid(p, &handle);
        device = handle;
        return r == 0;
    }

    /// <inheritdoc/>
    public NvmlReturn TotalEnergy(nint device, out ulong millijoules)
    {
        ulong v = 0;
        int r = _energy(device, &v);
        millijoules = v;
        return (NvmlReturn)r;
    }

    /// <inheritdoc/>
    public NvmlReturn Power(nint device, out uint milliwatts)
    {
        uint v = 0;
        int r = _power(device, &v);
        milliwatts = v;
        return (NvmlReturn)r;
    }

    private static Nvml? Load()
    {
        try
        {
            if (!NativeLibrary.TryLoad(LibraryName, out nint lib)) return null;
            if (!NativeLibrary.TryGetExport(lib, "nvmlInit_v2", out nint init)) return null;
            if (((delegate* unmanaged<int>)init)() != 0) return null;
            return new Nvml(lib);
        }
        catch (EntryPointNotFoundException)
        {
            return null;
        }
    }
}
