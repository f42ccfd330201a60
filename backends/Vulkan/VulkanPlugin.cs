using Serving.Abstractions;

namespace Serving.Backends.Vulkan;

/// <summary>
/// The Vulkan backend: every physical device the loader lists (discrete GPUs first, CPU implementations such as
/// lavapipe last). Probe creates and destroys one VkInstance and reads properties (no device, no shaders); it says
/// plainly why the backend cannot run (no loader, no device, no compute queue). GPUs score 100 or more; a CPU
/// implementation scores below the Cpu backend's 10, so it is listed but never the default.
/// </summary>
public sealed class VulkanPlugin : IBackendPlugin
{
    /// <summary>The environment variable that turns the validation layer on for every device (like DeviceOptions.Validation).</summary>
    public const string ValidationVariable = "SERVING_VULKAN_VALIDATION";

    /// <inheritdoc/>
    public string Name => "vulkan";

    /// <inheritdoc/>
    public ContractVersion ContractVersion => new(ContractVersion.CurrentMajor, ContractVersion.CurrentMinor);

    /// <inheritdoc/>
    public ProbeResult Probe()
    {
        try
        {
            using VulkanInstance? instance = VulkanInstance.TryCreate(validation: false, out string error);
            if (instance is null) return ProbeResult.Unusable(error);
            var devices = new List<DeviceDescriptor>();
            var usable = new List<DeviceFacts>();
            foreach (var physical in instance.OrderedDevices())
            {
                DeviceFacts facts = DeviceFacts.Read(instance.Vk, physical);
                devices.Add(facts.Describe(devices.Count));
                if (facts.Unusable is null) usable.Add(facts);
            }
            if (devices.Count == 0)
                return ProbeResult.Unusable("the Vulkan loader found no physical device (no driver installed: mesa-vulkan-drivers, or the GPU vendor's)");
            if (usable.Count == 0)
                return new ProbeResult(false, "no Vulkan device can run compute: " + string.Join("; ", devices.Select(d => $"{d.Name}: {d.Details[^1]}")), 0, devices);
            bool gpu = usable.Any(f => f.Kind != DeviceKind.Cpu);
            bool discrete = usable.Any(f => f.Kind == DeviceKind.Gpu);
            int score = discrete ? 120 : gpu ? 100 : 5;
            string summary = string.Join("; ", devices.Select(d => $"{d.Id} {d.Name}"));
            return new ProbeResult(true, summary, score, devices);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return ProbeResult.Unusable($"Vulkan probe failed: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <inheritdoc/>
    public IAccelerator CreateDevice(int index, DeviceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        bool validation = options.Validation || Environment.GetEnvironmentVariable(ValidationVariable) == "1";
        return VulkanAccelerator.Open(index, options with { Validation = validation });
    }
}
