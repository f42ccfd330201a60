using Serving.Abstractions;
using Silk.NET.Vulkan;
using Buffer = Silk.NET.Vulkan.Buffer;

namespace Serving.Backends.Vulkan;

/// <summary>
/// A VkBuffer with its own VkDeviceMemory (storage, transfer source and destination). Host-visible buffers (unified
/// memory, staging) stay mapped for their lifetime. The allocation is rounded up to 16 bytes so shaders can read whole
/// 32-bit words and vkCmdFillBuffer can clear it; <see cref="Length"/> is what the caller asked for. An imported buffer
/// (<see cref="Imported"/>) is bound inside a shared <see cref="HostImports.Region"/> instead: host memory read in place,
/// not mapped, not counted as device memory, released with the region's last buffer.
/// </summary>
internal sealed unsafe class VulkanBuffer : IDeviceBuffer
{
    private readonly VulkanAccelerator _owner;
    private readonly HostImports.Region? _region;
    private int _disposed;

    private VulkanBuffer(VulkanAccelerator owner, Buffer buffer, DeviceMemory memory, long length, long allocated, byte* mapped, HostImports.Region? region = null)
    {
        _owner = owner;
        _region = region;
        Handle = buffer;
        Memory = memory;
        Length = length;
        AllocatedBytes = allocated;
        Mapped = mapped;
    }

    /// <inheritdoc/>
    public IAccelerator Device => _owner;

    /// <summary>The owning accelerator.</summary>
    internal VulkanAccelerator Owner => _owner;

    /// <inheritdoc/>
    public long Length { get; }

    /// <summary>Bytes of the VkBuffer (Length rounded up to 16, at least 16).</summary>
    internal long AllocatedBytes { get; }

    /// <inheritdoc/>
    public bool IsHostMemory => Mapped is not null;

    /// <inheritdoc/>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The buffer.</summary>
    internal Buffer Handle { get; }

    /// <summary>Its memory.</summary>
    internal DeviceMemory Memory { get; }

    /// <summary>True when the buffer is bound inside imported host memory (a weight read in place).</summary>
    internal bool IsImported => _region is not null;

    /// <summary>The mapped host address (coherent memory), or null for device-only memory and imported buffers.</summary>
    internal byte* Mapped { get; }

    /// <summary>
    /// Creates a buffer of <paramref name="bytes"/> in memory with <paramref name="required"/> flags (and
    /// <paramref name="preferred"/> when a type has them), mapped when the memory is host-visible and
    /// <paramref name="map"/> is true. Throws <see cref="AcceleratorException"/> when the device is
    /// out of memory or the size is beyond what it allocates.
    /// </summary>
    internal static VulkanBuffer Create(VulkanAccelerator owner, long bytes, MemoryPropertyFlags required, MemoryPropertyFlags preferred, string what, bool map = true)
    {
        Vk vk = owner.Vk;
        Silk.NET.Vulkan.Device device = owner.Handle;
        long allocated = Math.Max(16, (bytes + 15) & ~15L);
        var info = new BufferCreateInfo
        {
            SType = StructureType.BufferCreateInfo,
            Size = (ulong)allocated,
            Usage = BufferUsageFlags.StorageBufferBit | BufferUsageFlags.TransferSrcBit | BufferUsageFlags.TransferDstBit,
            SharingMode = SharingMode.Exclusive,
        };
        Buffer buffer;
        owner.Check(vk.CreateBuffer(device, &info, null, &buffer), what);
        DeviceMemory memory = default;
        try
        {
            vk.GetBufferMemoryRequirements(device, buffer, out MemoryRequirements req);
            int type = owner.Facts.FindType(req.MemoryTypeBits, required | preferred);
            if (type < 0) type = owner.Facts.FindType(req.MemoryTypeBits, required);
            if (type < 0)
                throw new AcceleratorException(owner.Id, what, 0, $"no memory type with {required} for this buffer");
            var alloc = new MemoryAllocateInfo { SType = StructureType.MemoryAllocateInfo, AllocationSize = req.Size, MemoryTypeIndex = (uint)type };
            owner.Check(vk.AllocateMemory(device, &alloc, null, &memory), what);
            owner.Check(vk.BindBufferMemory(device, buffer, memory, 0), what);
            void* mapped = null;
            if (map && (owner.Facts.Memory.MemoryTypes[type].PropertyFlags & MemoryPropertyFlags.HostVisibleBit) != 0)
                owner.Check(vk.MapMemory(device, memory, 0, Vk.WholeSize, 0, &mapped), what);
            return new VulkanBuffer(owner, buffer, memory, bytes, allocated, (byte*)mapped);
        }
        catch
        {
            if (memory.Handle != 0) vk.FreeMemory(device, memory, null);
            vk.DestroyBuffer(device, buffer, null);
            throw;
        }
    }

    /// <summary>A buffer of <paramref name="bytes"/> already bound inside <paramref name="region"/> (by <see cref="HostImports"/>).</summary>
    internal static VulkanBuffer Imported(VulkanAccelerator owner, Buffer buffer, HostImports.Region region, long bytes)
        => new(owner, buffer, region.Memory, bytes, bytes, null, region);

    /// <summary>Throws <see cref="ObjectDisposedException"/> once disposed.</summary>
    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    /// <inheritdoc/>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _owner.Release(this);
    }

    /// <summary>Destroys the Vulkan objects (called by the owner once no submitted work can use them).</summary>
    internal void Destroy()
    {
        Vk vk = _owner.Vk;
        if (Mapped is not null) vk.UnmapMemory(_owner.Handle, Memory);
        vk.DestroyBuffer(_owner.Handle, Handle, null);
        if (_region is not null) _owner.HostImports!.Release(_region);
        else vk.FreeMemory(_owner.Handle, Memory, null);
    }

    /// <summary>Marks the buffer disposed without destroying (the owner destroys everything at once).</summary>
    internal void MarkDisposed() => Volatile.Write(ref _disposed, 1);

    /// <inheritdoc/>
    public override string ToString() => $"vulkan buffer {Length} bytes{(IsHostMemory ? " (host-visible)" : IsImported ? " (imported host memory)" : "")}";
}
