using Serving.Abstractions;

namespace Serving.Backends.Cuda;

/// <summary>The descriptors of the two test devices (ILGPU's CPU accelerator running the Cuda kernels).</summary>
internal static class CpuTestDevice
{
    /// <summary>Device 0 (serial lanes) or 1 (warp lanes).</summary>
    public static DeviceDescriptor Describe(int index)
    {
        long total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        string form = index == 0 ? "serial lanes" : "warp lanes";
        return new DeviceDescriptor("cuda", index, $"ILGPU CPU accelerator ({form}, test device)", "ILGPU", "ILGPU 1.5.3",
            $"ilgpu-cpu-{(index == 0 ? "serial" : "warp")}", DeviceKind.Cpu, total > 0 ? total : 1L << 30)
        {
            Details = index == 0
                ? ["the Cuda kernels on ILGPU's CPU accelerator, one thread per unit computing the 32 lanes in turn (same bits as the warp form)",
                   $"a test device: listed only with {CudaPlugin.TestDeviceVariable}=cpu"]
                : ["the Cuda kernels on ILGPU's CPU accelerator, 32-lane warps with ILGPU.Algorithms shuffles (slow: OS threads per lane)",
                   $"a test device: listed only with {CudaPlugin.TestDeviceVariable}=cpu"],
        };
    }
}
