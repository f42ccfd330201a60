using Serving.Backends.Vulkan.Validation;
using Silk.NET.Vulkan;

namespace Serving.Backends.Vulkan;

/// <summary>
/// A VkInstance (Vulkan 1.1 or newer), optionally with VK_LAYER_KHRONOS_validation and a debug-utils messenger that
/// feeds a <see cref="ValidationSink"/>. Owns both; disposing destroys them.
/// </summary>
internal sealed unsafe class VulkanInstance : IDisposable
{
    private const string ValidationLayer = "VK_LAYER_KHRONOS_validation";
    private const string DebugUtils = "VK_EXT_debug_utils";
    private readonly DebugUtilsMessengerEXT _messenger;
    private bool _disposed;

    private VulkanInstance(Vk vk, Instance instance, uint apiVersion, ValidationSink? sink, DebugUtilsMessengerEXT messenger)
    {
        Vk = vk;
        Handle = instance;
        ApiVersion = apiVersion;
        Validation = sink;
        _messenger = messenger;
    }

    /// <summary>The API.</summary>
    public Vk Vk { get; }

    /// <summary>The instance.</summary>
    public Instance Handle { get; }

    /// <summary>The API version the instance was created for (at most 1.3).</summary>
    public uint ApiVersion { get; }

    /// <summary>Where validation messages go; null without validation.</summary>
    public ValidationSink? Validation { get; }

    /// <summary>
    /// Creates an instance, or returns null with the reason. <paramref name="validation"/>: enable the Khronos validation
    /// layer and a messenger (a missing layer is an error then: the caller asked for checks it would not get).
    /// </summary>
    public static VulkanInstance? TryCreate(bool validation, out string error)
    {
        if (!VulkanApi.TryGet(out Vk vk, out error)) return null;
        uint loaderVersion = 0;
        if (vk.EnumerateInstanceVersion(ref loaderVersion) != Result.Success || loaderVersion < VulkanApi.MakeVersion(1, 1))
        {
            error = $"the Vulkan loader offers only version {VulkanApi.VersionText(loaderVersion)}; Serving needs 1.1";
            return null;
        }
        uint apiVersion = Math.Min(loaderVersion & ~0xFFFu, VulkanApi.MakeVersion(1, 3));
        var layers = new List<string>();
        var extensions = new List<string>();
        HashSet<string> offered = VulkanApi.InstanceExtensions(vk);
        if (offered.Contains("VK_KHR_portability_enumeration")) extensions.Add("VK_KHR_portability_enumeration"); // MoltenVK
        ValidationSink? sink = null;
        if (validation)
        {
            if (!VulkanApi.InstanceLayers(vk).Contains(ValidationLayer))
            {
                error = $"validation was requested but {ValidationLayer} is not installed (Debian: vulkan-validationlayers)";
                return null;
            }
            layers.Add(ValidationLayer);
            extensions.Add(DebugUtils);
            sink = new ValidationSink();
        }

        byte* appName = VulkanApi.Utf8("Serving");
        byte** layerNames = VulkanApi.Utf8Array(layers);
        byte** extNames = VulkanApi.Utf8Array(extensions);
        try
        {
            var app = new ApplicationInfo
            {
                SType = StructureType.ApplicationInfo,
                PApplicationName = appName,
                PEngineName = appName,
                ApplicationVersion = VulkanApi.MakeVersion(0, 1),
                EngineVersion = VulkanApi.MakeVersion(0, 1),
                ApiVersion = apiVersion,
            };
            DebugUtilsMessengerCreateInfoEXT messengerInfo = sink?.CreateInfo() ?? default;
            var info = new InstanceCreateInfo
            {
                SType = StructureType.InstanceCreateInfo,
                PApplicationInfo = &app,
                EnabledLayerCount = (uint)layers.Count,
                PpEnabledLayerNames = layerNames,
                EnabledExtensionCount = (uint)extensions.Count,
                PpEnabledExtensionNames = extNames,
                // The messenger also covers vkCreateInstance/vkDestroyInstance themselves.
                PNext = sink is null ? null : &messengerInfo,
                Flags = extensions.Contains("VK_KHR_portability_enumeration") ? InstanceCreateFlags.EnumeratePortabilityBitKhr : 0,
            };
            Instance instance;
            Result r = vk.CreateInstance(&info, null, &instance);
            if (r != Result.Success)
            {
                sink?.Dispose();
                error = $"vkCreateInstance failed: {r}";
                return null;
            }
            DebugUtilsMessengerEXT messenger = default;
            if (sink is not null)
            {
                var create = (delegate* unmanaged<Instance, DebugUtilsMessengerCreateInfoEXT*, AllocationCallbacks*, DebugUtilsMessengerEXT*, Result>)
                    vk.GetInstanceProcAddr(instance, "vkCreateDebugUtilsMessengerEXT").Handle;
                if (create is null || (r = create(instance, &messengerInfo, null, &messenger)) != Result.Success)
                {
                    vk.DestroyInstance(instance, null);
                    sink.Dispose();
                    error = $"vkCreateDebugUtilsMessengerEXT failed: {r}";
                    return null;
                }
            }
            return new VulkanInstance(vk, instance, apiVersion, sink, messenger);
        }
        finally
        {
            VulkanApi.Free(appName);
            VulkanApi.Free(layerNames, layers.Count);
            VulkanApi.Free(extNames, extensions.Count);
        }
    }

    /// <summary>The physical devices in the order the backend numbers them: discrete GPUs, integrated, virtual,
    /// other, then CPU implementations (lavapipe), each group in the driver's order.</summary>
    public PhysicalDevice[] OrderedDevices()
    {
        uint count = 0;
        _ = Vk.EnumeratePhysicalDevices(Handle, &count, null);
        var devices = new PhysicalDevice[count];
        fixed (PhysicalDevice* p = devices)
            _ = Vk.EnumeratePhysicalDevices(Handle, &count, p);
        return devices
            .Select((d, i) => (Device: d, Index: i, Rank: Rank(d)))
            .OrderBy(x => x.Rank).ThenBy(x => x.Index)
            .Select(x => x.Device).ToArray();
    }

    private int Rank(PhysicalDevice device)
    {
        Vk.GetPhysicalDeviceProperties(device, out PhysicalDeviceProperties props);
        return props.DeviceType switch
        {
            PhysicalDeviceType.DiscreteGpu => 0,
            PhysicalDeviceType.IntegratedGpu => 1,
            PhysicalDeviceType.VirtualGpu => 2,
            PhysicalDeviceType.Other => 3,
            _ => 4,
        };
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_messenger.Handle != 0)
        {
            var destroy = (delegate* unmanaged<Instance, DebugUtilsMessengerEXT, AllocationCallbacks*, void>)
                Vk.GetInstanceProcAddr(Handle, "vkDestroyDebugUtilsMessengerEXT").Handle;
            if (destroy is not null) destroy(Handle, _messenger, null);
        }
        Vk.DestroyInstance(Handle, null);
        Validation?.Dispose();
    }
}
