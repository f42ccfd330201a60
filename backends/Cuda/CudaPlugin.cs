using Serving.Abstractions;
using Serving.Backends.Cuda.Interop;

namespace Serving.Backends.Cuda;

/// <summary>
/// The Cuda backend: NVIDIA GPUs through ILGPU, which compiles the C# kernels to PTX for the device at run time and needs
/// only the driver (libcuda.so.1 / nvcuda.dll). Probe binds a handful of driver API calls itself — no ILGPU context, no
/// CUDA context, no compilation — and says why it cannot run: the driver library missing (named), no device, a driver
/// older than CUDA 11.0. GPUs score 150.
/// <para>Tests only: with <c>SERVING_CUDA_TEST_DEVICE=cpu</c> the plugin lists, instead of GPUs, ILGPU's CPU accelerator
/// running the same kernels: cuda:0 in the serial-lane form (fast enough for the conformance suite), cuda:1 in the warp
/// form (32-lane warps, shuffles through ILGPU.Algorithms: slow, for small checks). Users never see these devices.</para>
/// </summary>
public sealed class CudaPlugin : IBackendPlugin
{
    /// <summary>The environment variable the tests set to "cpu" to get ILGPU's CPU accelerator as cuda:0 and cuda:1.</summary>
    public const string TestDeviceVariable = "SERVING_CUDA_TEST_DEVICE";

    /// <inheritdoc/>
    public string Name => "cuda";

    /// <inheritdoc/>
    public ContractVersion ContractVersion => new(ContractVersion.CurrentMajor, ContractVersion.CurrentMinor);

    private static bool TestDevices => Environment.GetEnvironmentVariable(TestDeviceVariable) == "cpu";

    /// <inheritdoc/>
    public ProbeResult Probe()
    {
        if (TestDevices)
            return new ProbeResult(true, $"ILGPU CPU accelerator running the Cuda kernels ({TestDeviceVariable}=cpu: a test device)", 1,
                [CpuTestDevice.Describe(0), CpuTestDevice.Describe(1)]);
        try
        {
            DriverInfo? driver = CudaDriver.Read(CudaDriver.LibraryName, out string error);
            return Decide(driver, error, Nvml.TryOpen());
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return ProbeResult.Unusable($"Cuda probe failed: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <inheritdoc/>
    public IAccelerator CreateDevice(int index, DeviceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (TestDevices)
        {
            if ((uint)index > 1)
                throw new ArgumentOutOfRangeException(nameof(index), $"the Cuda test device lists cuda:0 and cuda:1, not {index}");
            return CudaAccelerator.OpenCpu(index, options);
        }
        DriverInfo? driver = CudaDriver.Read(CudaDriver.LibraryName, out string error)
            ?? throw new AcceleratorException($"cuda:{index}", "open device", 0, error);
        if ((uint)index >= (uint)driver.Devices.Count)
            throw new ArgumentOutOfRangeException(nameof(index), $"the cuda backend has {driver.Devices.Count} device(s), not {index}");
        return CudaAccelerator.OpenGpu(driver, driver.Devices[index], Nvml.TryOpen(), options);
    }

    /// <summary>The probe's verdict on what the driver said (a pure function: tests feed it made-up drivers).</summary>
    internal static ProbeResult Decide(DriverInfo? driver, string error, INvml? nvml)
    {
        if (driver is null)
            return ProbeResult.Unusable(error);
        if (driver.CudaVersion < CudaDriver.MinimumCudaVersion)
            return ProbeResult.Unusable($"the NVIDIA driver supports CUDA {driver.CudaVersionText}; the Cuda backend needs a driver for CUDA 11.0 or later (update the driver)");
        if (driver.Devices.Count == 0)
            return ProbeResult.Unusable($"the NVIDIA driver (CUDA {driver.CudaVersionText}) reports no CUDA device");
        var devices = driver.Devices.Select(g => CudaAccelerator.Describe(driver, g, nvml)).ToList();
        var usable = driver.Devices.Where(g => g.Major >= 5).ToList();
        if (usable.Count == 0)
            return new ProbeResult(false, "no CUDA device of compute capability 5.0 or later: " + string.Join("; ", driver.Devices.Select(g => $"{g.Name} ({g.Architecture})")), 0, devices);
        return new ProbeResult(true, string.Join("; ", devices.Select(d => $"{d.Id} {d.Name}")), 150, devices);
    }
}
