using System.Runtime.InteropServices;
using System.Text;
using Silk.NET.Vulkan;

namespace Serving.Backends.Vulkan;

/// <summary>
/// The process's one handle on the Vulkan loader (libvulkan.so.1, vulkan-1.dll, libvulkan.1.dylib / MoltenVK), loaded on
/// first use. A missing loader is a reason, not an exception: <see cref="TryGet"/> says why.
/// </summary>
internal static class VulkanApi
{
    private static readonly Lazy<(Vk? Api, string? Error)> Loaded = new(Load);

    /// <summary>VK_MAKE_API_VERSION(0, major, minor, 0).</summary>
    public static uint MakeVersion(uint major, uint minor, uint patch = 0) => (major << 22) | (minor << 12) | patch;

    /// <summary>"1.3.230" from a packed version.</summary>
    public static string VersionText(uint v) => $"{(v >> 22) & 0x7F}.{(v >> 12) & 0x3FF}.{v & 0xFFF}";

    /// <summary>The loaded API, or false with the reason it could not be loaded.</summary>
    public static bool TryGet(out Vk api, out string error)
    {
        var (loaded, why) = Loaded.Value;
        api = loaded!;
        error = why ?? "";
        return loaded is not null;
    }

    private static (Vk?, string?) Load()
    {
        try
        {
            Vk api = Vk.GetApi();
            // Touch one entry point: some Silk.NET versions load the library lazily, on the first call.
            uint version = 0;
            _ = api.EnumerateInstanceVersion(ref version);
            return (api, null);
        }
        catch (Exception e) when (e is DllNotFoundException or FileNotFoundException or EntryPointNotFoundException or TypeInitializationException or PlatformNotSupportedException or InvalidOperationException)
        {
            return (null, $"the Vulkan loader (libvulkan.so.1) was not found or could not be loaded ({e.GetType().Name}: {e.Message}); install libvulkan1 and a driver (mesa-vulkan-drivers)");
        }
    }

    /// <summary>A NUL-terminated UTF-8 copy of <paramref name="text"/> in native memory (free with <see cref="Free"/>).</summary>
    public static unsafe byte* Utf8(string text)
    {
        int n = Encoding.UTF8.GetByteCount(text);
        var p = (byte*)NativeMemory.Alloc((nuint)n + 1);
        Encoding.UTF8.GetBytes(text, new Span<byte>(p, n));
        p[n] = 0;
        return p;
    }

    /// <summary>An array of NUL-terminated UTF-8 strings in native memory (free with <see cref="Free(byte**, int)"/>).</summary>
    public static unsafe byte** Utf8Array(IReadOnlyList<string> texts)
    {
        var array = (byte**)NativeMemory.Alloc((nuint)Math.Max(texts.Count, 1), (nuint)sizeof(byte*));
        for (int i = 0; i < texts.Count; i++)
            array[i] = Utf8(texts[i]);
        return array;
    }

    /// <summary>Frees what <see cref="Utf8"/> returned.</summary>
    public static unsafe void Free(byte* p) => NativeMemory.Free(p);

    /// <summary>Frees what <see cref="Utf8Array"/> returned.</summary>
    public static unsafe void Free(byte** array, int count)
    {
        for (int i = 0; i < count; i++)
            NativeMemory.Free(array[i]);
        NativeMemory.Free(array);
    }

    /// <summary>Reads a fixed NUL-terminated char array (VkPhysicalDeviceProperties.deviceName and the like).</summary>
    public static unsafe string FixedString(byte* p, int max)
    {
        int n = 0;
        while (n < max && p[n] != 0) n++;
        return Encoding.UTF8.GetString(p, n);
    }

    /// <summary>Every extension the device offers.</summary>
    public static unsafe HashSet<string> DeviceExtensions(Vk vk, PhysicalDevice device)
    {
        uint count = 0;
        _ = vk.EnumerateDeviceExtensionProperties(device, (byte*)null, &count, null);
        var props = new ExtensionProperties[count];
        fixed (ExtensionProperties* p = props)
            _ = vk.EnumerateDeviceExtensionProperties(device, (byte*)null, &count, p);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
            fixed (byte* name = props[i].ExtensionName)
                names.Add(FixedString(name, 256));
        return names;
    }

    /// <summary>Every instance extension the loader offers.</summary>
    public static unsafe HashSet<string> InstanceExtensions(Vk vk)
    {
        uint count = 0;
        _ = vk.EnumerateInstanceExtensionProperties((byte*)null, &count, null);
        var props = new ExtensionProperties[count];
        fixed (ExtensionProperties* p = props)
            _ = vk.EnumerateInstanceExtensionProperties((byte*)null, &count, p);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
            fixed (byte* name = props[i].ExtensionName)
                names.Add(FixedString(name, 256));
        return names;
    }

    /// <summary>Every instance layer installed.</summary>
    public static unsafe HashSet<string> InstanceLayers(Vk vk)
    {
        uint count = 0;
        _ = vk.EnumerateInstanceLayerProperties(&count, null);
        var props = new LayerProperties[count];
        fixed (LayerProperties* p = props)
            _ = vk.EnumerateInstanceLayerProperties(&count, p);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
            fixed (byte* name = props[i].LayerName)
                names.Add(FixedString(name, 256));
        return names;
    }
}
