using Serving.Abstractions;

namespace Serving.Backends.Vulkan.Tests;

/// <summary>Out of memory is an AcceleratorException, never a crash; the device keeps working after it.</summary>
public sealed class MemoryTests
{
    [SkippableFact]
    public void AllocationBeyondTheDeviceThrowsAcceleratorException()
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        long tooMuch = Math.Max(device.Descriptor.TotalMemoryBytes, device.FreeMemoryBytes) * 2 + (1L << 30);
        var e = Assert.Throws<AcceleratorException>(() => device.Allocate(tooMuch));
        Assert.Equal(device.Descriptor.Id, e.Device);
        Assert.False(e.DeviceLost);
        using IDeviceBuffer small = device.Allocate(1 << 20);
        Assert.Equal(1 << 20, small.Length);
    }

    [SkippableFact]
    public void AllocationsAreZeroFilledAndFreeMemoryIsReported()
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        Assert.True(device.FreeMemoryBytes > 0);
        using IDeviceBuffer b = device.Allocate(4099);
        var bytes = new byte[4099];
        Array.Fill(bytes, (byte)7);
        device.Download(b, 0, bytes);
        Assert.All(bytes, x => Assert.Equal(0, x));
        Assert.Equal(device.Unified, b.IsHostMemory);
    }

    [SkippableFact]
    public void PreparedWeightHoldsTheSourceBytes()
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        var bytes = new byte[3 * 2 * 33]; // f16 [3, 33]: rows of an odd element count, 198 bytes (not whole words)
        new Random(5).NextBytes(bytes);
        unsafe
        {
            fixed (byte* p = bytes)
            {
                using var weight = (VulkanWeight)device.PrepareWeight(new WeightSource("w", (nint)p, bytes.Length, DataType.F16, 3, 33, false));
                Assert.Equal(66, weight.RowBytes);
                Assert.False(weight.ReadsSourceInPlace);
                var back = new byte[bytes.Length];
                nint address = (nint)p;
                Assert.Throws<ArgumentException>(() => device.PrepareWeight(new WeightSource("i", address, 12, DataType.I32, 1, 3, false)));
                device.ReadHost(weight.Buffer, 0, back, "test");
                Assert.Equal(bytes, back);
            }
        }
    }
}
