using Serving.Abstractions;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>What the element-wise ops share.</summary>
internal static class Elementwise
{
    /// <summary>Shaders index elements with 32-bit uints: refuse more (a device fault-free ArgumentException).</summary>
    public static void CheckCount(VulkanStream s, string op, long elements)
    {
        if (elements > uint.MaxValue)
            throw new ArgumentException($"{op}: {elements} elements exceed the {uint.MaxValue} one Vulkan dispatch addresses on {s.Device.Descriptor.Id}");
    }

    /// <summary>Unused marker so the file compiles alone.</summary>
    internal static DataType F32 => DataType.F32;
}
