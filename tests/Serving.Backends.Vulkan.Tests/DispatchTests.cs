using Serving.Abstractions;

namespace Serving.Backends.Vulkan.Tests;

/// <summary>The dispatch layer: an op recorded, submitted once, read back; barriers only between dependent ops.</summary>
public sealed class DispatchTests
{
    [SkippableFact]
    public void AddRunsWithValidationAndBroadcasts()
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        using var stream = (VulkanStream)device.CreateStream();
        float[] a = [1, 2, 3, 4, 5, 6], b = [10, 20, 30];
        TensorView av = VulkanFixture.Floats(device, a, 2, 3), bv = VulkanFixture.Floats(device, b, 1, 3);
        TensorView o = new(device.Allocate(24), 0, DataType.F32, 2, 3);
        stream.Add(av, bv, o);
        stream.Synchronize();
        Assert.Equal([11f, 22, 33, 14, 25, 36], VulkanFixture.Read(device, o));
        Assert.Equal(1, stream.Submissions);
    }
}
