using System.Globalization;
using Serving.Abstractions;
using Silk.NET.Vulkan;

namespace Serving.Backends.Vulkan;

/// <summary>
/// What the backend reads about one physical device: identity, memory heaps, the compute queue, limits, and the
/// optional features it uses when present (each with a fallback when absent: the base shaders need none of them).
/// </summary>
internal sealed unsafe class DeviceFacts
{
    /// <summary>VK_EXT_memory_budget.</summary>
    public const string MemoryBudgetExtension = "VK_EXT_memory_budget";
    /// <summary>VK_KHR_push_descriptor.</summary>
    public const string PushDescriptorExtension = "VK_KHR_push_descriptor";
    /// <summary>VK_EXT_external_memory_host.</summary>
    public const string HostImportExtension = "VK_EXT_external_memory_host";

    /// <summary>Gives the device's PCI address (its hwmon meter is found by it).</summary>
    public const string PciBusInfoExtension = "VK_EXT_pci_bus_info";

    /// <summary>
    /// A comma list of optional features to treat as absent, as if the device lacked them (their fallbacks run, and
    /// the feature is not enabled on the logical device, so the validation layer reports any shader that still uses
    /// one): <c>int-dot</c>, <c>storage16</c>, <c>float16</c>, <c>storage8</c>, <c>subgroup</c>, or <c>all</c>.
    /// </summary>
    public const string DisableVariable = "SERVING_VULKAN_DISABLE";

    /// <summary>The names <see cref="DisableVariable"/> takes, each with what it masks.</summary>
    public static readonly IReadOnlyList<(string Name, string Feature)> Maskable =
    [
        ("int-dot", "integer dot product"),
        ("storage16", "16-bit storage"),
        ("float16", "float16"),
        ("storage8", "8-bit storage"),
        ("subgroup", "subgroup arithmetic"),
    ];

    private DeviceFacts() { }

    /// <summary>The handle.</summary>
    public PhysicalDevice Device { get; private init; }
    /// <summary>deviceName.</summary>
    public string Name { get; private init; } = "";
    /// <summary>Vendor name from the PCI vendor id.</summary>
    public string Vendor { get; private init; } = "";
    /// <summary>Driver name and info ("llvmpipe Mesa 22.3.6 (LLVM 15.0.6)"), else the packed driver version.</summary>
    public string Driver { get; private init; } = "";
    /// <summary>deviceUUID as hex.</summary>
    public string Uuid { get; private init; } = "";

    /// <summary>PCI address "dddd:bb:dd.f" from VK_EXT_pci_bus_info, or null.</summary>
    public string? PciAddress { get; private init; }
    /// <summary>The device's API version.</summary>
    public uint ApiVersion { get; private init; }
    /// <summary>The Vulkan device type.</summary>
    public PhysicalDeviceType Type { get; private init; }
    /// <summary>The contract's kind.</summary>
    public DeviceKind Kind => Type switch
    {
        PhysicalDeviceType.DiscreteGpu => DeviceKind.Gpu,
        PhysicalDeviceType.IntegratedGpu => DeviceKind.IntegratedGpu,
        PhysicalDeviceType.Cpu => DeviceKind.Cpu,
        _ => DeviceKind.Gpu,
    };
    /// <summary>Memory types and heaps.</summary>
    public PhysicalDeviceMemoryProperties Memory { get; private init; }
    /// <summary>The device limits.</summary>
    public PhysicalDeviceLimits Limits { get; private init; }
    /// <summary>Largest single allocation (Maintenance3).</summary>
    public ulong MaxAllocationBytes { get; private init; }
    /// <summary>A queue family with compute, preferring one without graphics; -1 when none.</summary>
    public int ComputeQueueFamily { get; private init; } = -1;
    /// <summary>Valid bits of that family's timestamps (0: no timestamps).</summary>
    public uint TimestampValidBits { get; private init; }
    /// <summary>Subgroup size.</summary>
    public uint SubgroupSize { get; private init; }
    /// <summary>Subgroup arithmetic in compute shaders.</summary>
    public bool SubgroupArithmetic { get; private init; }
    /// <summary>Subgroup shuffles (xor) in compute shaders: MatMul's subgroup build (matmul.subgroup.spv).</summary>
    public bool SubgroupShuffle { get; private init; }
    /// <summary>storageBuffer16BitAccess.</summary>
    public bool Storage16 { get; private init; }
    /// <summary>
    /// Whether the default variants read halves through 16-bit storage (f16vec2) rather than from 32-bit words: where
    /// the device has it, except on CPU drivers, where lavapipe measured no gain from it (both builds give the same
    /// bits; the other one stays a variant).
    /// </summary>
    public bool PrefersStorage16 => Storage16 && Type != PhysicalDeviceType.Cpu;
    /// <summary>storageBuffer8BitAccess.</summary>
    public bool Storage8 { get; private init; }
    /// <summary>shaderFloat16.</summary>
    public bool Float16 { get; private init; }
    /// <summary>shaderInt8.</summary>
    public bool Int8 { get; private init; }
    /// <summary>shaderIntegerDotProduct.</summary>
    public bool IntegerDotProduct { get; private init; }
    /// <summary>VK_EXT_memory_budget.</summary>
    public bool MemoryBudget { get; private init; }
    /// <summary>VK_KHR_push_descriptor.</summary>
    public bool PushDescriptors { get; private init; }
    /// <summary>VK_EXT_external_memory_host: host memory (a mapped file) can back device memory, read in place.</summary>
    public bool HostImport { get; private init; }
    /// <summary>minImportedHostPointerAlignment: imported host ranges start and end on multiples of it (0 without the extension).</summary>
    public ulong HostImportAlignment { get; private init; }
    /// <summary>Extensions offered.</summary>
    public IReadOnlySet<string> Extensions { get; private init; } = new HashSet<string>();
    /// <summary>Features the device has that <see cref="DisableVariable"/> masked (their names as in <see cref="Maskable"/>).</summary>
    public IReadOnlySet<string> Disabled { get; private init; } = new HashSet<string>();
    /// <summary>Names in <see cref="DisableVariable"/> that are not features (reported in the details, otherwise ignored).</summary>
    public IReadOnlyList<string> UnknownDisabled { get; private init; } = [];

    /// <summary>
    /// The names in <see cref="DisableVariable"/> (lower case; <c>all</c> expanded), and those that name no feature.
    /// </summary>
    public static (HashSet<string> Names, List<string> Unknown) ReadDisabled()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var unknown = new List<string>();
        string? value = Environment.GetEnvironmentVariable(DisableVariable);
        if (string.IsNullOrWhiteSpace(value)) return (names, unknown);
        foreach (string raw in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string name = raw.ToLowerInvariant();
            if (name == "all") names.UnionWith(Maskable.Select(m => m.Name));
            else if (Maskable.Any(m => m.Name == name)) names.Add(name);
            else unknown.Add(raw);
        }
        return (names, unknown);
    }

    /// <summary>True when the device reads host-visible memory that is also device-local (integrated GPUs, lavapipe):
    /// buffers are then mapped and written in place, without staging.</summary>
    public bool UnifiedMemory => Kind is DeviceKind.IntegratedGpu or DeviceKind.Cpu && FindType(~0u, MemoryPropertyFlags.DeviceLocalBit | MemoryPropertyFlags.HostVisibleBit) >= 0;

    /// <summary>Size of the largest device-local heap.</summary>
    public long DeviceLocalBytes
    {
        get
        {
            long best = 0;
            for (int i = 0; i < Memory.MemoryHeapCount; i++)
                if ((Memory.MemoryHeaps[i].Flags & MemoryHeapFlags.DeviceLocalBit) != 0)
                    best = Math.Max(best, (long)Memory.MemoryHeaps[i].Size);
            return best;
        }
    }

    /// <summary>Why the backend cannot run on this device, or null when it can.</summary>
    public string? Unusable => ApiVersion < VulkanApi.MakeVersion(1, 1) ? $"Vulkan {VulkanApi.VersionText(ApiVersion)} (needs 1.1)"
        : ComputeQueueFamily < 0 ? "no queue family with compute" : null;

    /// <summary>The first memory type allowed by <paramref name="typeBits"/> with all of <paramref name="flags"/>; -1 when none.</summary>
    public int FindType(uint typeBits, MemoryPropertyFlags flags)
    {
        for (int i = 0; i < Memory.MemoryTypeCount; i++)
            if ((typeBits & (1u << i)) != 0 && (Memory.MemoryTypes[i].PropertyFlags & flags) == flags)
                return i;
        return -1;
    }

    /// <summary>Reads everything about <paramref name="device"/>.</summary>
    public static DeviceFacts Read(Vk vk, PhysicalDevice device)
    {
        HashSet<string> ext = VulkanApi.DeviceExtensions(vk, device);
        vk.GetPhysicalDeviceProperties(device, out PhysicalDeviceProperties basic);
        uint api = basic.ApiVersion;
        bool v12 = api >= VulkanApi.MakeVersion(1, 2);

        bool hostImport = ext.Contains(HostImportExtension);
        var importProps = new PhysicalDeviceExternalMemoryHostPropertiesEXT { SType = StructureType.PhysicalDeviceExternalMemoryHostPropertiesExt };
        var subgroup = new PhysicalDeviceSubgroupProperties { SType = StructureType.PhysicalDeviceSubgroupProperties, PNext = hostImport ? &importProps : null };
        var maint3 = new PhysicalDeviceMaintenance3Properties { SType = StructureType.PhysicalDeviceMaintenance3Properties, PNext = &subgroup };
        var driver = new PhysicalDeviceDriverProperties { SType = StructureType.PhysicalDeviceDriverProperties, PNext = &maint3 };
        bool hasDriver = v12 || ext.Contains("VK_KHR_driver_properties");
        var props = new PhysicalDeviceProperties2 { SType = StructureType.PhysicalDeviceProperties2, PNext = hasDriver ? &driver : &maint3 };
        if (api >= VulkanApi.MakeVersion(1, 1)) vk.GetPhysicalDeviceProperties2(device, &props);
        else props.Properties = basic;

        var (disabled, unknown) = ReadDisabled();
        using FeatureChain features = FeatureChain.Query(vk, device, api, ext);

        vk.GetPhysicalDeviceMemoryProperties(device, out PhysicalDeviceMemoryProperties memory);
        uint familyCount = 0;
        vk.GetPhysicalDeviceQueueFamilyProperties(device, &familyCount, null);
        var families = new QueueFamilyProperties[familyCount];
        fixed (QueueFamilyProperties* f = families)
            vk.GetPhysicalDeviceQueueFamilyProperties(device, &familyCount, f);
        int compute = -1;
        for (int i = 0; i < families.Length; i++)
        {
            if ((families[i].QueueFlags & QueueFlags.ComputeBit) == 0) continue;
            bool graphics = (families[i].QueueFlags & QueueFlags.GraphicsBit) != 0;
            // A dedicated compute family first; else the first with compute.
            if (compute < 0 || (!graphics && (families[compute].QueueFlags & QueueFlags.GraphicsBit) != 0))
                compute = i;
        }

        string name = VulkanApi.FixedString(props.Properties.DeviceName, 256);
        string driverText = hasDriver
            ? $"{VulkanApi.FixedString(driver.DriverName, 256)} {VulkanApi.FixedString(driver.DriverInfo, 256)}".Trim()
            : $"driver {props.Properties.DriverVersion}";
        var uuid = new System.Text.StringBuilder();
        for (int i = 0; i < 16; i++) uuid.Append(props.Properties.PipelineCacheUuid[i].ToString("x2", CultureInfo.InvariantCulture));
        var deviceUuid = new System.Text.StringBuilder();
        var idProps = new PhysicalDeviceIDProperties { SType = StructureType.PhysicalDeviceIDProperties };
        // The PCI address (VK_EXT_pci_bus_info) finds the device's own hwmon meter; lavapipe has none.
        var pci = new PhysicalDevicePCIBusInfoPropertiesEXT { SType = StructureType.PhysicalDevicePciBusInfoPropertiesExt };
        bool hasPci = ext.Contains(PciBusInfoExtension);
        if (hasPci) idProps.PNext = &pci;
        var idChain = new PhysicalDeviceProperties2 { SType = StructureType.PhysicalDeviceProperties2, PNext = &idProps };
        if (api >= VulkanApi.MakeVersion(1, 1)) vk.GetPhysicalDeviceProperties2(device, &idChain);
        else hasPci = false;
        for (int i = 0; i < 16; i++) deviceUuid.Append(idProps.DeviceUuid[i].ToString("x2", CultureInfo.InvariantCulture));

        bool subgroupCompute = (subgroup.SupportedStages & ShaderStageFlags.ComputeBit) != 0
                               && (subgroup.SupportedOperations & SubgroupFeatureFlags.BasicBit) != 0;
        bool arithmetic = subgroupCompute && (subgroup.SupportedOperations & SubgroupFeatureFlags.ArithmeticBit) != 0;
        bool shuffle = subgroupCompute && (subgroup.SupportedOperations & SubgroupFeatureFlags.ShuffleBit) != 0;
        // A masked feature the device has is reported as disabled; one it lacks anyway is just lacked.
        var masked = new HashSet<string>(StringComparer.Ordinal);
        bool Keep(string name, bool has)
        {
            if (!has || !disabled.Contains(name)) return has;
            masked.Add(name);
            return false;
        }

        return new DeviceFacts
        {
            Device = device,
            Name = name,
            Vendor = VendorName(props.Properties.VendorID),
            Driver = driverText,
            Uuid = deviceUuid.ToString(),
            PciAddress = hasPci ? string.Create(CultureInfo.InvariantCulture, $"{pci.PciDomain:x4}:{pci.PciBus:x2}:{pci.PciDevice:x2}.{pci.PciFunction:x1}") : null,
            ApiVersion = api,
            Type = props.Properties.DeviceType,
            Memory = memory,
            Limits = props.Properties.Limits,
            MaxAllocationBytes = maint3.MaxMemoryAllocationSize,
            ComputeQueueFamily = compute,
            TimestampValidBits = compute >= 0 ? families[compute].TimestampValidBits : 0,
            SubgroupSize = subgroup.SubgroupSize,
            SubgroupArithmetic = Keep("subgroup", arithmetic),
            SubgroupShuffle = Keep("subgroup", shuffle),
            Storage16 = Keep("storage16", features.Storage16),
            Storage8 = Keep("storage8", features.Storage8),
            Float16 = Keep("float16", features.Float16),
            Int8 = features.Int8,
            IntegerDotProduct = Keep("int-dot", features.IntegerDotProduct),
            MemoryBudget = ext.Contains(MemoryBudgetExtension),
            PushDescriptors = ext.Contains(PushDescriptorExtension),
            HostImport = hostImport && importProps.MinImportedHostPointerAlignment > 0,
            HostImportAlignment = hostImport ? importProps.MinImportedHostPointerAlignment : 0,
            Extensions = ext,
            Disabled = masked,
            UnknownDisabled = unknown,
        };
    }

    private static string VendorName(uint id) => id switch
    {
        0x1002 => "AMD",
        0x10DE => "NVIDIA",
        0x8086 => "Intel",
        0x13B5 => "Arm",
        0x5143 => "Qualcomm",
        0x106B => "Apple",
        0x1010 => "Imagination",
        0x10005 => "Mesa",
        _ => $"0x{id:x4}",
    };

    /// <summary>The contract's descriptor for index <paramref name="index"/>, with the facts 'devices' shows.</summary>
    public DeviceDescriptor Describe(int index)
    {
        var details = new List<string>
        {
            $"Vulkan {VulkanApi.VersionText(ApiVersion)}, {Type switch { PhysicalDeviceType.DiscreteGpu => "discrete GPU", PhysicalDeviceType.IntegratedGpu => "integrated GPU", PhysicalDeviceType.Cpu => "CPU implementation", PhysicalDeviceType.VirtualGpu => "virtual GPU", _ => "other" }}, {Driver}",
        };
        for (int i = 0; i < Memory.MemoryHeapCount; i++)
        {
            MemoryHeap heap = Memory.MemoryHeaps[i];
            var kinds = new List<string>();
            if ((heap.Flags & MemoryHeapFlags.DeviceLocalBit) != 0) kinds.Add("device-local");
            bool hostVisible = false;
            for (int t = 0; t < Memory.MemoryTypeCount; t++)
                if (Memory.MemoryTypes[t].HeapIndex == i && (Memory.MemoryTypes[t].PropertyFlags & MemoryPropertyFlags.HostVisibleBit) != 0)
                    hostVisible = true;
            if (hostVisible) kinds.Add("host-visible");
            details.Add($"memory heap {i}: {Gib((long)heap.Size)} {string.Join(", ", kinds)}");
        }
        if (PciAddress is not null) details.Add($"PCI {PciAddress}");
        details.Add(UnifiedMemory ? "memory: unified (device-local host-visible buffers, no staging)" : "memory: device-local with staging copies");
        details.Add($"subgroup size {SubgroupSize}{(SubgroupArithmetic ? ", subgroup arithmetic" : Disabled.Contains("subgroup") ? ", subgroup operations disabled" : ", no subgroup arithmetic")}");
        details.Add($"max storage buffer range {Gib(Limits.MaxStorageBufferRange)}, max allocation {Gib((long)MaxAllocationBytes)}");
        details.Add(ComputeQueueFamily >= 0
            ? $"compute queue family {ComputeQueueFamily}, timestamps {(TimestampValidBits > 0 ? $"{TimestampValidBits} bits at {Limits.TimestampPeriod} ns" : "none")}"
            : "no compute queue: cannot run");
        // What the shaders use when present (each with a fallback when absent), what the device has but no shader
        // needs (float16 arithmetic: f16 values are widened to f32 on load; 8-bit storage: int8 data is consumed as
        // packed 4×int8 words, one 32-bit load each), what it lacks, and what SERVING_VULKAN_DISABLE masked.
        var uses = new List<string>();
        var unused = new List<string>();
        var lacks = new List<string>();
        void Feature(bool has, bool used, string what, string name)
        {
            if (has) (used ? uses : unused).Add(what);
            else if (!Disabled.Contains(name)) lacks.Add(what);
        }
        Feature(Storage16, true, "16-bit storage", "storage16");
        Feature(IntegerDotProduct, true, "integer dot product", "int-dot");
        Feature(SubgroupArithmetic, true, "subgroup arithmetic", "subgroup");
        Feature(Float16, false, "float16", "float16");
        Feature(Storage8, false, "8-bit storage", "storage8");
        (MemoryBudget ? uses : lacks).Add("memory budget");
        (PushDescriptors ? uses : lacks).Add("push descriptors");
        if (UnifiedMemory) (HostImport ? uses : lacks).Add("host memory import (mapped weights read in place)");
        details.Add("uses: " + (uses.Count > 0 ? string.Join(", ", uses) : "none"));
        if (unused.Count > 0) details.Add("has, unused: " + string.Join(", ", unused));
        if (lacks.Count > 0) details.Add("lacks (fallbacks used): " + string.Join(", ", lacks));
        if (Disabled.Count > 0)
            details.Add("lacks (disabled by " + DisableVariable + ", fallbacks used): "
                        + string.Join(", ", Maskable.Where(m => Disabled.Contains(m.Name)).Select(m => m.Feature)));
        if (UnknownDisabled.Count > 0)
            details.Add($"{DisableVariable}: ignored unknown name(s) {string.Join(", ", UnknownDisabled)} (known: all, {string.Join(", ", Maskable.Select(m => m.Name))})");
        if (Unusable is { } why) details.Add("unusable: " + why);
        return new DeviceDescriptor("vulkan", index, Name, Vendor, $"{Driver} (Vulkan {VulkanApi.VersionText(ApiVersion)})",
            $"vulkan|{Uuid}|{Name}", Kind, UnifiedMemory || Kind != DeviceKind.Gpu ? LargestHeap() : DeviceLocalBytes)
        {
            Details = details,
        };
    }

    private long LargestHeap()
    {
        long best = 0;
        for (int i = 0; i < Memory.MemoryHeapCount; i++) best = Math.Max(best, (long)Memory.MemoryHeaps[i].Size);
        return best;
    }

    private static string Gib(long bytes) => bytes >= 1L << 30
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.0} GiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0} MiB");
}
