using System.Globalization;
using Serving.Abstractions;
using Silk.NET.Vulkan;
using Buffer = Silk.NET.Vulkan.Buffer;

namespace Serving.Backends.Vulkan;

/// <summary>
/// Zero-copy weights on devices that read host memory (integrated GPUs, lavapipe) and offer
/// VK_EXT_external_memory_host: a persistent source (a read-only memory-mapped GGUF file) is imported as device memory
/// (VkImportMemoryHostPointerInfoEXT) and each weight's buffer is bound inside it at the tensor's offset, so the
/// kernels read the file's pages in place and the weights exist once in memory. To keep the number of allocations
/// small (maxMemoryAllocationCount), one import covers a whole file-backed mapping (on Linux, found in
/// /proc/self/maps), or a page-aligned chunk of it of at most maxMemoryAllocationSize; elsewhere, or for anonymous
/// memory, the page-aligned span of the tensor alone. Anything that cannot be imported (no extension, no memory type
/// for the pointer, an import the driver refuses, a source that is not persistent) is copied instead: the caller
/// falls back. A region is freed when the last buffer bound to it is destroyed.
/// </summary>
internal sealed unsafe class HostImports : IDisposable
{
    /// <summary>Set to 1 to copy weights even where they could be imported (tests the copy path).</summary>
    public const string DisableVariable = "SERVING_VULKAN_NO_HOST_IMPORT";

    private readonly VulkanAccelerator _device;
    private readonly delegate* unmanaged<Device, ExternalMemoryHandleTypeFlags, void*, MemoryHostPointerPropertiesEXT*, Result> _pointerProperties;
    private readonly object _gate = new();
    private readonly List<Region> _regions = [];
    private readonly long _page;
    private readonly long _maxRegion;
    private readonly uint _bufferTypes;
    private readonly long _bufferAlignment;

    /// <summary>Opens the importer, or returns null with the reason it cannot run on <paramref name="device"/>.</summary>
    public static HostImports? TryCreate(VulkanAccelerator device, out string why)
    {
        why = "";
        if (!device.Unified)
            why = "the device has its own memory (reading host memory in place would cross the bus on every read)";
        else if (!device.Facts.HostImport)
            why = $"{DeviceFacts.HostImportExtension} is missing";
        else if (Environment.GetEnvironmentVariable(DisableVariable) == "1")
            why = $"{DisableVariable}=1";
        if (why.Length > 0) return null;
        var get = (delegate* unmanaged<Device, ExternalMemoryHandleTypeFlags, void*, MemoryHostPointerPropertiesEXT*, Result>)
            device.Vk.GetDeviceProcAddr(device.Handle, "vkGetMemoryHostPointerPropertiesEXT").Handle;
        if (get is null)
        {
            why = "vkGetMemoryHostPointerPropertiesEXT is missing";
            return null;
        }
        return new HostImports(device, get);
    }

    private HostImports(VulkanAccelerator device, delegate* unmanaged<Device, ExternalMemoryHandleTypeFlags, void*, MemoryHostPointerPropertiesEXT*, Result> get)
    {
        _device = device;
        _pointerProperties = get;
        _page = (long)Math.Max(device.Facts.HostImportAlignment, 4096);
        _maxRegion = (long)Math.Min(device.Facts.MaxAllocationBytes, long.MaxValue / 2) / _page * _page;
        // What memory types and alignment a weight buffer bound to imported memory accepts.
        Buffer probe = CreateBuffer(16, "probe imported buffer");
        device.Vk.GetBufferMemoryRequirements(device.Handle, probe, out MemoryRequirements req);
        device.Vk.DestroyBuffer(device.Handle, probe, null);
        _bufferTypes = req.MemoryTypeBits;
        _bufferAlignment = (long)Math.Max(req.Alignment, 1);
    }

    /// <summary>Device memory objects importing host memory now.</summary>
    public int Regions
    {
        get { lock (_gate) return _regions.Count; }
    }

    /// <summary>Bytes of host memory imported now (the regions' lengths).</summary>
    public long ImportedBytes
    {
        get { lock (_gate) return _regions.Sum(r => r.Length); }
    }

    /// <summary>Imports made since the device opened (a region each).</summary>
    public int Imports { get; private set; }

    /// <summary>Why the last import failed (the weight was copied instead), or null.</summary>
    public string? LastFailure { get; private set; }

    /// <summary>
    /// A buffer over the source's bytes in place, and where row 0 starts in it; null when the source cannot be
    /// imported (not persistent, not word-aligned, refused by the driver): the caller copies it then.
    /// </summary>
    public VulkanBuffer? TryImport(in WeightSource source, string what, out long offset)
    {
        offset = 0;
        if (!source.Persistent || source.Pointer % 4 != 0) return null;
        lock (_gate)
        {
            long start = source.Pointer, end = start + source.Bytes;
            Region? region = _regions.Find(r => r.Start <= start && end <= r.Start + r.Length) ?? Import(start, end, what);
            if (region is null) return null;
            long at = start - region.Start;
            long alignment = _bufferAlignment;
            for (int attempt = 0; attempt < 2; attempt++)
            {
                long memoryOffset = at / alignment * alignment;
                long delta = at - memoryOffset;
                long size = (delta + source.Bytes + 15) & ~15L;
                if (memoryOffset + size > region.Length) size = region.Length - memoryOffset; // the region ends on a page
                Buffer buffer = CreateBuffer(size, what);
                _device.Vk.GetBufferMemoryRequirements(_device.Handle, buffer, out MemoryRequirements req);
                bool fits = (req.MemoryTypeBits & (1u << region.Type)) != 0 && memoryOffset + (long)req.Size <= region.Length;
                if (fits && memoryOffset % (long)req.Alignment == 0)
                {
                    Result r = _device.Vk.BindBufferMemory(_device.Handle, buffer, region.Memory, (ulong)memoryOffset);
                    if (r != Result.Success)
                    {
                        _device.Vk.DestroyBuffer(_device.Handle, buffer, null);
                        LastFailure = $"{what}: vkBindBufferMemory on imported memory: {r}";
                        ReleaseIfUnused(region);
                        return null;
                    }
                    region.Refs++;
                    offset = delta;
                    return VulkanBuffer.Imported(_device, buffer, region, size);
                }
                _device.Vk.DestroyBuffer(_device.Handle, buffer, null);
                if (!fits || attempt == 1)
                {
                    LastFailure = $"{what}: a buffer at byte {memoryOffset} of the imported region does not fit its memory type or size";
                    ReleaseIfUnused(region);
                    return null;
                }
                alignment = (long)req.Alignment;
            }
            return null;
        }
    }

    private Buffer CreateBuffer(long size, string what)
    {
        var external = new ExternalMemoryBufferCreateInfo
        {
            SType = StructureType.ExternalMemoryBufferCreateInfo,
            HandleTypes = ExternalMemoryHandleTypeFlags.HostAllocationBitExt,
        };
        var info = new BufferCreateInfo
        {
            SType = StructureType.BufferCreateInfo,
            PNext = &external,
            Size = (ulong)size,
            Usage = BufferUsageFlags.StorageBufferBit | BufferUsageFlags.TransferSrcBit,
            SharingMode = SharingMode.Exclusive,
        };
        Buffer buffer;
        _device.Check(_device.Vk.CreateBuffer(_device.Handle, &info, null, &buffer), what);
        return buffer;
    }

    /// <summary>Imports a region covering host bytes [start, end): the whole file mapping (or a chunk of it) when it
    /// can be found, else the tensor's pages. Null when the driver refuses both.</summary>
    private Region? Import(long start, long end, string what)
    {
        long first = start / _page * _page, last = (end + _page - 1) / _page * _page;
        if (last - first > _maxRegion)
        {
            LastFailure = $"{what}: {last - first} bytes exceed the largest allocation ({_maxRegion})";
            return null;
        }
        if (FileMapping(start) is var (lo, hi) && lo <= first && last <= hi)
        {
            long chunk = _maxRegion;
            long from = lo + (first - lo) / chunk * chunk;
            long to = Math.Min(hi, from + chunk);
            if (last > to) (from, to) = (first, Math.Min(hi, first + chunk)); // a tensor across a chunk edge starts its own
            if (ImportRange(from, to, what) is { } whole) return whole;
        }
        return ImportRange(first, last, what);
    }

    private Region? ImportRange(long from, long to, string what)
    {
        var props = new MemoryHostPointerPropertiesEXT { SType = StructureType.MemoryHostPointerPropertiesExt };
        Result r = _pointerProperties(_device.Handle, ExternalMemoryHandleTypeFlags.HostAllocationBitExt, (void*)from, &props);
        if (r != Result.Success)
        {
            LastFailure = $"{what}: vkGetMemoryHostPointerPropertiesEXT: {r}";
            return null;
        }
        uint types = props.MemoryTypeBits & _bufferTypes;
        int type = _device.Facts.FindType(types, MemoryPropertyFlags.DeviceLocalBit);
        if (type < 0) type = _device.Facts.FindType(types, 0);
        if (type < 0)
        {
            LastFailure = $"{what}: no memory type imports this host pointer for a storage buffer (host types 0x{props.MemoryTypeBits:x}, buffer types 0x{_bufferTypes:x})";
            return null;
        }
        var import = new ImportMemoryHostPointerInfoEXT
        {
            SType = StructureType.ImportMemoryHostPointerInfoExt,
            HandleType = ExternalMemoryHandleTypeFlags.HostAllocationBitExt,
            PHostPointer = (void*)from,
        };
        var alloc = new MemoryAllocateInfo { SType = StructureType.MemoryAllocateInfo, PNext = &import, AllocationSize = (ulong)(to - from), MemoryTypeIndex = (uint)type };
        DeviceMemory memory;
        r = _device.Vk.AllocateMemory(_device.Handle, &alloc, null, &memory);
        if (r != Result.Success)
        {
            LastFailure = $"{what}: importing {to - from} bytes of host memory: {r}";
            return null;
        }
        var region = new Region(memory, from, to - from, type);
        _regions.Add(region);
        Imports++;
        return region;
    }

    /// <summary>The file-backed mapping [start, end) holding <paramref name="address"/> (Linux: /proc/self/maps), or
    /// null when there is none or it cannot be read (anonymous memory imports the tensor's pages only: its mapping may
    /// change under the allocator).</summary>
    internal static (long Start, long End)? FileMapping(long address)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsAndroid()) return null;
        try
        {
            foreach (string line in File.ReadLines("/proc/self/maps"))
            {
                // "7f1c2a000000-7f1c4a000000 r--s 00000000 08:01 1234567   /path/model.gguf"
                int dash = line.IndexOf('-', StringComparison.Ordinal);
                int space = line.IndexOf(' ', StringComparison.Ordinal);
                if (dash <= 0 || space <= dash) continue;
                if (!long.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long lo)
                    || !long.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long hi))
                    continue;
                if (address < lo || address >= hi) continue;
                string[] fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
                bool file = fields.Length >= 6 && fields[4] != "0" && fields[5].TrimStart().StartsWith('/');
                return file ? (lo, hi) : null;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>Called by an imported buffer's Destroy: frees the region with its last buffer.</summary>
    internal void Release(Region region)
    {
        lock (_gate)
        {
            region.Refs--;
            ReleaseIfUnused(region);
        }
    }

    private void ReleaseIfUnused(Region region)
    {
        if (region.Refs > 0 || !_regions.Remove(region)) return;
        _device.Vk.FreeMemory(_device.Handle, region.Memory, null);
    }

    /// <summary>Frees every region left (the device destroys its buffers first).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            foreach (Region r in _regions) _device.Vk.FreeMemory(_device.Handle, r.Memory, null);
            _regions.Clear();
        }
    }

    /// <summary>One import: device memory over host bytes [Start, Start + Length), and how many buffers use it.</summary>
    internal sealed class Region(DeviceMemory memory, long start, long length, int type)
    {
        public DeviceMemory Memory { get; } = memory;
        public long Start { get; } = start;
        public long Length { get; } = length;
        public int Type { get; } = type;
        public int Refs { get; set; }
    }
}
