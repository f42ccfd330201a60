using Serving.Abstractions;

namespace Serving.Backends.Vulkan.Tests;

/// <summary>Opens Vulkan devices for tests, or says why it cannot (no loader, no device): tests skip with that reason.</summary>
internal static class VulkanFixture
{
    private static readonly Lazy<ProbeResult> ProbeOnce = new(() => new VulkanPlugin().Probe());

    /// <summary>The probe, once per process.</summary>
    public static ProbeResult Probe => ProbeOnce.Value;

    /// <summary>Opens device 0 with the validation layer on (skips the test when Vulkan cannot run here).</summary>
    public static VulkanAccelerator Open(bool validation = true)
    {
        Skip.If(!Probe.Usable, $"Vulkan cannot run here: {Probe.Reason}");
        return (VulkanAccelerator)new VulkanPlugin().CreateDevice(0, new DeviceOptions(Validation: validation));
    }

    /// <summary>Opens device 0 with validation, treated as a device with its own memory (staging for every transfer,
    /// as SERVING_VULKAN_FORCE_STAGING=1 does).</summary>
    public static VulkanAccelerator OpenStaging()
    {
        Skip.If(!Probe.Usable, $"Vulkan cannot run here: {Probe.Reason}");
        return VulkanAccelerator.Open(0, new DeviceOptions(Validation: true), forceStaging: true);
    }

    /// <summary>A buffer holding <paramref name="values"/>, viewed as [rows, cols] f32.</summary>
    public static TensorView Floats(IAccelerator device, float[] values, int rows, int cols)
    {
        IDeviceBuffer buffer = device.Allocate(values.Length * 4L);
        device.Upload(buffer, 0, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        return new TensorView(buffer, 0, DataType.F32, rows, cols);
    }

    /// <summary>Reads a view back as floats.</summary>
    public static float[] Read(IAccelerator device, in TensorView view)
    {
        var result = new float[view.Rows * view.Cols];
        device.Download(view.Buffer, view.Offset, System.Runtime.InteropServices.MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }
}
