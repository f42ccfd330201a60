using Serving.Abstractions;
using Serving.Backends.Cuda.Interop;

namespace Serving.Backends.Cuda.Tests;

/// <summary>The probe says why the backend cannot run, in words a user can act on, and describes GPUs it finds.</summary>
public sealed class ProbeTests
{
    private static readonly GpuInfo H200 = new(0, "NVIDIA H200", 150_000_000_000, 9, 0, 132, "GPU-01234567-89ab-cdef-0123-456789abcdef", "0000:65:00.0");

    [Fact]
    public void A_missing_driver_library_is_named()
    {
        DriverInfo? driver = CudaDriver.Read("libcuda-not-installed.so.1", out string error);
        Assert.Null(driver);
        Assert.Contains("libcuda-not-installed.so.1 not found", error, StringComparison.Ordinal);
        ProbeResult probe = CudaPlugin.Decide(driver, error, null);
        Assert.False(probe.Usable);
        Assert.Empty(probe.Devices);
        Assert.Equal(error, probe.Reason);
    }

    /// <summary>On a machine without the NVIDIA driver (this build machine), the real probe names libcuda.so.1.</summary>
    [SkippableFact]
    public void The_real_probe_without_a_driver_names_libcuda()
    {
        Skip.If(System.Runtime.InteropServices.NativeLibrary.TryLoad(CudaDriver.LibraryName, out nint lib) && lib != 0,
            $"{CudaDriver.LibraryName} is installed here: the probe finds the driver");
        string? before = Environment.GetEnvironmentVariable(CudaPlugin.TestDeviceVariable);
        Skip.If(before == "cpu", "the test device is selected in this process");
        ProbeResult probe = new CudaPlugin().Probe();
        Assert.False(probe.Usable);
        Assert.StartsWith($"{CudaDriver.LibraryName} not found", probe.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_driver_older_than_cuda_11_is_refused_with_both_versions()
    {
        ProbeResult probe = CudaPlugin.Decide(new DriverInfo(10020, [H200]), "", null);
        Assert.False(probe.Usable);
        Assert.Contains("CUDA 10.2", probe.Reason, StringComparison.Ordinal);
        Assert.Contains("11.0 or later", probe.Reason, StringComparison.Ordinal);
        Assert.Contains("update the driver", probe.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void No_device_is_a_reason()
    {
        ProbeResult probe = CudaPlugin.Decide(new DriverInfo(12040, []), "", null);
        Assert.False(probe.Usable);
        Assert.Contains("reports no CUDA device", probe.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_gpu_is_described_with_name_driver_version_and_uuid()
    {
        var nvml = new FakeNvml { Driver = "550.54.15", EnergyMillijoules = [1000] };
        ProbeResult probe = CudaPlugin.Decide(new DriverInfo(12040, [H200]), "", nvml);
        Assert.True(probe.Usable);
        Assert.True(probe.Score >= 100);
        DeviceDescriptor d = Assert.Single(probe.Devices);
        Assert.Equal("cuda:0", d.Id);
        Assert.Equal("NVIDIA H200", d.Name);
        Assert.Equal("NVIDIA", d.Vendor);
        Assert.Equal("550.54.15", d.DriverVersion);
        Assert.Equal(H200.Uuid, d.Fingerprint);
        Assert.Equal(DeviceKind.Gpu, d.Kind);
        Assert.Contains(d.Details, l => l.Contains("sm_90", StringComparison.Ordinal) && l.Contains("132 SMs", StringComparison.Ordinal));
        Assert.Contains(d.Details, l => l.Contains("dp4a", StringComparison.Ordinal));
        Assert.Contains(d.Details, l => l.StartsWith("energy: NVML total-energy counter", StringComparison.Ordinal));
    }

    [Fact]
    public void Without_nvml_the_driver_version_is_the_cuda_version()
    {
        DeviceDescriptor d = Assert.Single(CudaPlugin.Decide(new DriverInfo(12040, [H200]), "", null).Devices);
        Assert.Equal("CUDA 12.4", d.DriverVersion);
        Assert.Contains(d.Details, l => l.Contains("libnvidia-ml.so.1 not found", StringComparison.Ordinal) || l.Contains("nvml.dll not found", StringComparison.Ordinal));
    }

    [Fact]
    public void Only_gpus_below_compute_capability_5_is_unusable()
    {
        var old = H200 with { Name = "Tesla K80", Major = 3, Minor = 7 };
        ProbeResult probe = CudaPlugin.Decide(new DriverInfo(11040, [old]), "", null);
        Assert.False(probe.Usable);
        Assert.Contains("compute capability 5.0", probe.Reason, StringComparison.Ordinal);
        Assert.Contains("Tesla K80 (sm_37)", probe.Reason, StringComparison.Ordinal);
        Assert.Single(probe.Devices);
    }

    [Fact]
    public void Uuids_are_spelled_as_nvidia_smi_does()
    {
        byte[] bytes = Convert.FromHexString("0123456789abcdef0123456789abcdef");
        Assert.Equal("GPU-01234567-89ab-cdef-0123-456789abcdef", CudaDriver.FormatUuid(bytes));
    }
}
