using Serving.Abstractions;
using Silk.NET.Vulkan;

namespace Serving.Backends.Vulkan.Tests;

/// <summary>With validation on, a broken Vulkan rule becomes an AcceleratorException thrown from the next call.</summary>
public sealed class ValidationTests
{
    [SkippableFact]
    public unsafe void ValidationMessageFailsTheNextCall()
    {
        using VulkanAccelerator device = VulkanFixture.Open(validation: true);
        Assert.NotNull(device.Validation);
        // Break a rule on purpose: a buffer of size 0 (VUID-VkBufferCreateInfo-size-00912).
        var info = new BufferCreateInfo { SType = StructureType.BufferCreateInfo, Size = 0, Usage = BufferUsageFlags.StorageBufferBit };
        Silk.NET.Vulkan.Buffer buffer;
        _ = device.Vk.CreateBuffer(device.Handle, &info, null, &buffer);
        if (buffer.Handle != 0) device.Vk.DestroyBuffer(device.Handle, buffer, null);
        var e = Assert.Throws<AcceleratorException>(() => device.Allocate(16));
        Assert.Contains("validation", e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("size", e.Message, StringComparison.Ordinal);
        Assert.False(e.DeviceLost);
        // Reported once: the next call works again.
        using IDeviceBuffer ok = device.Allocate(16);
    }

    /// <summary>What the layer says while the device is destroyed (here a leaked buffer, VUID-vkDestroyDevice-device-00378)
    /// comes after the last call that could throw: it is written out (stderr in a process) and counted, not dropped.</summary>
    [SkippableFact]
    public unsafe void ValidationMessagesRaisedWhileTheDeviceIsDestroyedAreReported()
    {
        VulkanAccelerator device = VulkanFixture.Open(validation: true);
        var info = new BufferCreateInfo { SType = StructureType.BufferCreateInfo, Size = 256, Usage = BufferUsageFlags.StorageBufferBit };
        Silk.NET.Vulkan.Buffer leaked;
        Assert.Equal(Result.Success, device.Vk.CreateBuffer(device.Handle, &info, null, &leaked));
        var lines = new List<string>();
        Action<string> stderr = Validation.ValidationSink.ShutdownLog;
        int before = Validation.ValidationSink.ShutdownMessages;
        Validation.ValidationSink.ShutdownLog = line => { lock (lines) lines.Add(line); };
        try
        {
            device.Dispose();
        }
        finally
        {
            Validation.ValidationSink.ShutdownLog = stderr;
        }
        Assert.True(Validation.ValidationSink.ShutdownMessages > before, "the leak was not counted");
        lock (lines)
            Assert.Contains(lines, l => l.StartsWith(device.Descriptor.Id, StringComparison.Ordinal) && l.Contains("VkBuffer", StringComparison.Ordinal));
    }

    [SkippableFact]
    public void ValidationIsOffByDefault()
    {
        using VulkanAccelerator device = VulkanFixture.Open(validation: false);
        Skip.If(Environment.GetEnvironmentVariable(VulkanPlugin.ValidationVariable) == "1", $"{VulkanPlugin.ValidationVariable}=1 turns it on");
        Assert.Null(device.Validation);
    }
}

/// <summary>VK_ERROR_DEVICE_LOST marks the device failed: DeviceLost on this and every later call.</summary>
public sealed class DeviceLostTests
{
    [SkippableFact]
    public void DeviceLostIsStickyAndFlagged()
    {
        using VulkanAccelerator device = VulkanFixture.Open(validation: false);
        using var stream = device.CreateStream();
        // The driver's answer to a submit or wait after a GPU hang; lavapipe never loses its device, so feed the code in.
        AcceleratorException first = device.Fault(Silk.NET.Vulkan.Result.ErrorDeviceLost, "submit");
        Assert.True(first.DeviceLost);
        Assert.True(Assert.Throws<AcceleratorException>(() => device.Allocate(16)).DeviceLost);
        Assert.True(Assert.Throws<AcceleratorException>(() => stream.Synchronize()).DeviceLost);
        AcceleratorException oom = device.Fault(Silk.NET.Vulkan.Result.ErrorOutOfDeviceMemory, "allocate");
        Assert.False(oom.DeviceLost);
        Assert.Contains("out of device memory", oom.Message, StringComparison.Ordinal);
    }
}
