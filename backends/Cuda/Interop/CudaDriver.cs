using System.Runtime.InteropServices;
using System.Text;

namespace Serving.Backends.Cuda.Interop;

/// <summary>One CUDA device as the driver API describes it.</summary>
/// <param name="Ordinal">cuDeviceGet's ordinal.</param>
/// <param name="Name">cuDeviceGetName.</param>
/// <param name="TotalMemoryBytes">cuDeviceTotalMem.</param>
/// <param name="Major">Compute capability major.</param>
/// <param name="Minor">Compute capability minor.</param>
/// <param name="Multiprocessors">SM count.</param>
/// <param name="Uuid">"GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as nvidia-smi and NVML spell it.</param>
/// <param name="PciBusId">"0000:65:00.0".</param>
internal sealed record GpuInfo(int Ordinal, string Name, long TotalMemoryBytes, int Major, int Minor, int Multiprocessors, string Uuid, string PciBusId)
{
    /// <summary>True when the device has dp4a (sm_61 and later).</summary>
    public bool HasDp4a => Major > 6 || (Major == 6 && Minor >= 1);

    /// <summary>"sm_90".</summary>
    public string Architecture => $"sm_{Major}{Minor}";
}

/// <summary>What the driver said: its CUDA version (1000·major + 10·minor) and its devices.</summary>
internal sealed record DriverInfo(int CudaVersion, IReadOnlyList<GpuInfo> Devices)
{
    /// <summary>"12.4".</summary>
    public string CudaVersionText => $"{CudaVersion / 1000}.{CudaVersion % 1000 / 10}";
}

/// <summary>
/// The few CUDA driver API calls the probe needs (cuInit, versions, device properties), bound at run time with
/// <see cref="NativeLibrary"/> so a machine without the driver only gets a reason naming the library. No context is
/// created. The library handle stays loaded for the process (ILGPU loads the same library to open a device).
/// </summary>
internal static unsafe class CudaDriver
{
    /// <summary>The driver library's name on this OS.</summary>
    public static string LibraryName => OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";

    /// <summary>The oldest driver the backend accepts (CUDA 11.0).</summary>
    public const int MinimumCudaVersion = 11000;

    private const int NoDevice = 100; // CUDA_ERROR_NO_DEVICE
    private const int AttributeMultiprocessors = 16, AttributeMajor = 75, AttributeMinor = 76;

    /// <summary>Reads the driver through <paramref name="library"/>; null with <paramref name="error"/> when it cannot.</summary>
    public static DriverInfo? Read(string library, out string error)
    {
        error = "";
        if (!NativeLibrary.TryLoad(library, out nint lib))
        {
            error = $"{library} not found: the NVIDIA driver is not installed (the Cuda backend needs only the driver, no CUDA toolkit)";
            return null;
        }
        if (!NativeLibrary.TryGetExport(lib, "cuInit", out nint init)
            || !NativeLibrary.TryGetExport(lib, "cuDriverGetVersion", out nint driverVersion)
            || !NativeLibrary.TryGetExport(lib, "cuDeviceGetCount", out nint getCount)
            || !NativeLibrary.TryGetExport(lib, "cuDeviceGet", out nint get)
            || !NativeLibrary.TryGetExport(lib, "cuDeviceGetName", out nint getName)
            || !NativeLibrary.TryGetExport(lib, "cuDeviceTotalMem_v2", out nint totalMem)
            || !NativeLibrary.TryGetExport(lib, "cuDeviceGetAttribute", out nint getAttribute)
            || !NativeLibrary.TryGetExport(lib, "cuDeviceGetUuid", out nint getUuid)
            || !NativeLibrary.TryGetExport(lib, "cuDeviceGetPCIBusId", out nint getPciBusId))
        {
            error = $"{library} lacks the CUDA driver API entry points (cuInit, cuDeviceGet…): not an NVIDIA driver library";
            return null;
        }
        int version = 0;
        int r = ((delegate* unmanaged<int*, int>)driverVersion)(&version);
        if (r != 0)
        {
            error = $"cuDriverGetVersion failed ({r})";
            return null;
        }
        r = ((delegate* unmanaged<uint, int>)init)(0);
        if (r == NoDevice)
            return new DriverInfo(version, []);
        if (r != 0)
        {
            error = $"cuInit failed ({r}): the NVIDIA driver cannot run here (kernel module not loaded, or no permission on /dev/nvidia*)";
            return null;
        }
        int count = 0;
        r = ((delegate* unmanaged<int*, int>)getCount)(&count);
        if (r != 0)
        {
            error = $"cuDeviceGetCount failed ({r})";
            return null;
        }
        var devices = new List<GpuInfo>();
        byte* name = stackalloc byte[256];
        byte* uuid = stackalloc byte[16];
        byte* bus = stackalloc byte[64];
        for (int i = 0; i < count; i++)
        {
            int device = 0;
            if (((delegate* unmanaged<int*, int, int>)get)(&device, i) != 0) continue;
            ((delegate* unmanaged<byte*, int, int, int>)getName)(name, 256, device);
            nuint bytes = 0;
            ((delegate* unmanaged<nuint*, int, int>)totalMem)(&bytes, device);
            int major = 0, minor = 0, sms = 0;
            var attribute = (delegate* unmanaged<int*, int, int, int>)getAttribute;
            attribute(&major, AttributeMajor, device);
            attribute(&minor, AttributeMinor, device);
            attribute(&sms, AttributeMultiprocessors, device);
            ((delegate* unmanaged<byte*, int, int>)getUuid)(uuid, device);
            ((delegate* unmanaged<byte*, int, int, int>)getPciBusId)(bus, 64, device);
            devices.Add(new GpuInfo(i, Text(name), (long)bytes, major, minor, sms, FormatUuid(new ReadOnlySpan<byte>(uuid, 16)), Text(bus)));
        }
        return new DriverInfo(version, devices);
    }

    /// <summary>16 bytes as "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".</summary>
    public static string FormatUuid(ReadOnlySpan<byte> uuid)
    {
        string hex = Convert.ToHexStringLower(uuid);
        return $"GPU-{hex[..8]}-{hex[8..12]}-{hex[12..16]}-{hex[16..20]}-{hex[20..]}";
    }

    private static string Text(byte* s) => Encoding.UTF8.GetString(MemoryMarshal.CreateReadOnlySpanFromNullTerminated(s)).Trim();
}
