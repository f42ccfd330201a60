using Serving.Abstractions;
using Silk.NET.Vulkan;

namespace Serving.Backends.Vulkan.Kernels;

/// <summary>
/// Builds each (shader, specialization constants) pipeline once per device and keeps it: shader module from the
/// embedded SPIR-V, a set layout of storage buffers (a push-descriptor set where VK_KHR_push_descriptor is enabled,
/// a pooled set otherwise), a push-constant range, and the compute pipeline through one VkPipelineCache.
/// </summary>
internal sealed unsafe class KernelCache : IDisposable
{
    private readonly VulkanAccelerator _device;
    private readonly Dictionary<string, Kernel> _kernels = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ShaderModule> _modules = new(StringComparer.Ordinal);
    private readonly object _gate = new();
    private readonly PipelineCache _pipelineCache;

    /// <summary>Creates an empty cache for <paramref name="device"/>.</summary>
    public KernelCache(VulkanAccelerator device, bool pushDescriptors)
    {
        _device = device;
        PushDescriptors = pushDescriptors;
        var info = new PipelineCacheCreateInfo { SType = StructureType.PipelineCacheCreateInfo };
        PipelineCache cache;
        device.Check(device.Vk.CreatePipelineCache(device.Handle, &info, null, &cache), "create pipeline cache");
        _pipelineCache = cache;
    }

    /// <summary>True when kernels use push descriptors.</summary>
    public bool PushDescriptors { get; }

    /// <summary>Pipelines built so far.</summary>
    public int Count
    {
        get { lock (_gate) return _kernels.Count; }
    }

    /// <summary>The pipeline for <paramref name="spec"/> specialized with <paramref name="constants"/> (constant_id i = constants[i]).</summary>
    public Kernel Get(KernelSpec spec, ReadOnlySpan<uint> constants)
    {
        string key = Key(spec.Shader, constants);
        lock (_gate)
        {
            if (_kernels.TryGetValue(key, out Kernel? k)) return k;
            k = Build(spec, key, constants);
            _kernels.Add(key, k);
            return k;
        }
    }

    private static string Key(string shader, ReadOnlySpan<uint> constants)
    {
        var sb = new System.Text.StringBuilder(shader).Append('[');
        for (int i = 0; i < constants.Length; i++)
        {
            if (i > 0) sb.Append(',');
            sb.Append(constants[i]);
        }
        return sb.Append(']').ToString();
    }

    private Kernel Build(KernelSpec spec, string key, ReadOnlySpan<uint> constants)
    {
        Vk vk = _device.Vk;
        Device dev = _device.Handle;
        string what = $"build kernel {key}";
        if (spec.TotalPushBytes > _device.Facts.Limits.MaxPushConstantsSize)
            throw new AcceleratorException(_device.Id, what, 0, $"{spec.TotalPushBytes} bytes of push constants exceed the device's {_device.Facts.Limits.MaxPushConstantsSize}");
        ShaderModule module = Module(spec.Shader);

        var bindings = stackalloc DescriptorSetLayoutBinding[spec.Bindings];
        for (int i = 0; i < spec.Bindings; i++)
            bindings[i] = new DescriptorSetLayoutBinding
            {
                Binding = (uint)i,
                DescriptorType = DescriptorType.StorageBuffer,
                DescriptorCount = 1,
                StageFlags = ShaderStageFlags.ComputeBit,
            };
        var setInfo = new DescriptorSetLayoutCreateInfo
        {
            SType = StructureType.DescriptorSetLayoutCreateInfo,
            BindingCount = (uint)spec.Bindings,
            PBindings = bindings,
            Flags = PushDescriptors ? DescriptorSetLayoutCreateFlags.PushDescriptorBitKhr : 0,
        };
        DescriptorSetLayout setLayout;
        _device.Check(vk.CreateDescriptorSetLayout(dev, &setInfo, null, &setLayout), what);

        var range = new PushConstantRange { StageFlags = ShaderStageFlags.ComputeBit, Offset = 0, Size = (uint)spec.TotalPushBytes };
        var layoutInfo = new PipelineLayoutCreateInfo
        {
            SType = StructureType.PipelineLayoutCreateInfo,
            SetLayoutCount = 1,
            PSetLayouts = &setLayout,
            PushConstantRangeCount = spec.TotalPushBytes > 0 ? 1u : 0u,
            PPushConstantRanges = &range,
        };
        PipelineLayout layout;
        _device.Check(vk.CreatePipelineLayout(dev, &layoutInfo, null, &layout), what);

        var entries = stackalloc SpecializationMapEntry[Math.Max(constants.Length, 1)];
        for (int i = 0; i < constants.Length; i++)
            entries[i] = new SpecializationMapEntry { ConstantID = (uint)i, Offset = (uint)(4 * i), Size = 4 };
        byte* entry = VulkanApi.Utf8("main");
        try
        {
            fixed (uint* data = constants)
            {
                var specInfo = new SpecializationInfo
                {
                    MapEntryCount = (uint)constants.Length,
                    PMapEntries = entries,
                    DataSize = (nuint)(4 * constants.Length),
                    PData = data,
                };
                var info = new ComputePipelineCreateInfo
                {
                    SType = StructureType.ComputePipelineCreateInfo,
                    Stage = new PipelineShaderStageCreateInfo
                    {
                        SType = StructureType.PipelineShaderStageCreateInfo,
                        Stage = ShaderStageFlags.ComputeBit,
                        Module = module,
                        PName = entry,
                        PSpecializationInfo = constants.Length > 0 ? &specInfo : null,
                    },
                    Layout = layout,
                };
                Pipeline pipeline;
                _device.Check(vk.CreateComputePipelines(dev, _pipelineCache, 1, &info, null, &pipeline), what);
                return new Kernel(spec, key, pipeline, layout, setLayout, PushDescriptors);
            }
        }
        finally
        {
            VulkanApi.Free(entry);
        }
    }

    private ShaderModule Module(string name)
    {
        if (_modules.TryGetValue(name, out ShaderModule m)) return m;
        byte[] code = ShaderLibrary.Get(name);
        fixed (byte* p = code)
        {
            var info = new ShaderModuleCreateInfo { SType = StructureType.ShaderModuleCreateInfo, CodeSize = (nuint)code.Length, PCode = (uint*)p };
            _device.Check(_device.Vk.CreateShaderModule(_device.Handle, &info, null, &m), $"create shader module {name}");
        }
        _modules.Add(name, m);
        return m;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Vk vk = _device.Vk;
        lock (_gate)
        {
            foreach (Kernel k in _kernels.Values)
            {
                vk.DestroyPipeline(_device.Handle, k.Pipeline, null);
                vk.DestroyPipelineLayout(_device.Handle, k.Layout, null);
                vk.DestroyDescriptorSetLayout(_device.Handle, k.SetLayout, null);
            }
            _kernels.Clear();
            foreach (ShaderModule m in _modules.Values)
                vk.DestroyShaderModule(_device.Handle, m, null);
            _modules.Clear();
            vk.DestroyPipelineCache(_device.Handle, _pipelineCache, null);
        }
    }
}
