using Silk.NET.Vulkan;

namespace Serving.Backends.Vulkan.Kernels;

/// <summary>A compute pipeline for one (shader, specialization) with its layouts. Owned by <see cref="KernelCache"/>.</summary>
internal sealed class Kernel
{
    internal Kernel(KernelSpec spec, string key, Pipeline pipeline, PipelineLayout layout, DescriptorSetLayout setLayout, bool pushDescriptors)
    {
        Spec = spec;
        Key = key;
        Pipeline = pipeline;
        Layout = layout;
        SetLayout = setLayout;
        PushDescriptors = pushDescriptors;
    }

    /// <summary>What it was built from.</summary>
    public KernelSpec Spec { get; }

    /// <summary>"shader[spec values]".</summary>
    public string Key { get; }

    /// <summary>The pipeline.</summary>
    public Pipeline Pipeline { get; }

    /// <summary>Its layout (one set, push constants).</summary>
    public PipelineLayout Layout { get; }

    /// <summary>Set 0's layout.</summary>
    public DescriptorSetLayout SetLayout { get; }

    /// <summary>True when set 0 is a push-descriptor set (VK_KHR_push_descriptor).</summary>
    public bool PushDescriptors { get; }
}
