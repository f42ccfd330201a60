using Serving.Abstractions;

namespace Serving.Backends.Vulkan.Tests;

/// <summary>Probe: lists every device with its details; a CPU implementation ranks below the cpu backend.</summary>
public sealed class ProbeTests
{
    [SkippableFact]
    public void ProbeListsLavapipeBelowTheCpuBackend()
    {
        ProbeResult probe = VulkanFixture.Probe;
        Skip.If(!probe.Usable, $"Vulkan cannot run here: {probe.Reason}");
        DeviceDescriptor? lavapipe = probe.Devices.FirstOrDefault(d => d.Name.Contains("llvmpipe", StringComparison.Ordinal));
        Skip.If(lavapipe is null, "no lavapipe device (mesa-vulkan-drivers) among: " + string.Join(", ", probe.Devices.Select(d => d.Name)));
        Assert.Equal(DeviceKind.Cpu, lavapipe!.Kind);
        Assert.Equal("vulkan", lavapipe.Backend);
        Assert.Contains(lavapipe.Details, l => l.StartsWith("memory heap 0:", StringComparison.Ordinal));
        Assert.Contains(lavapipe.Details, l => l.StartsWith("subgroup size ", StringComparison.Ordinal));
        Assert.Contains(lavapipe.Details, l => l.StartsWith("uses: ", StringComparison.Ordinal));
        Assert.Contains(lavapipe.Details, l => l.Contains("unified", StringComparison.Ordinal));
        if (probe.Devices.All(d => d.Kind == DeviceKind.Cpu))
            Assert.True(probe.Score < 10, $"a CPU implementation alone must score below the cpu backend's 10, got {probe.Score}");
        // Devices are numbered GPUs first, CPU implementations last.
        int firstCpu = probe.Devices.ToList().FindIndex(d => d.Kind == DeviceKind.Cpu);
        Assert.All(probe.Devices.Skip(firstCpu), d => Assert.Equal(DeviceKind.Cpu, d.Kind));
        Assert.Equal(Enumerable.Range(0, probe.Devices.Count), probe.Devices.Select(d => d.Index));
    }

    [SkippableFact]
    public void CreateDeviceRejectsAnIndexPastTheList()
    {
        ProbeResult probe = VulkanFixture.Probe;
        Skip.If(!probe.Usable, $"Vulkan cannot run here: {probe.Reason}");
        Assert.Throws<ArgumentOutOfRangeException>(() => new VulkanPlugin().CreateDevice(probe.Devices.Count, DeviceOptions.Default));
    }
}
