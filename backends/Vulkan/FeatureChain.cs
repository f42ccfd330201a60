using System.Runtime.InteropServices;
using Silk.NET.Vulkan;

namespace Serving.Backends.Vulkan;

/// <summary>
/// The optional features the backend uses (16-bit and 8-bit storage, float16/int8 arithmetic, integer dot product),
/// queried through a VkPhysicalDeviceFeatures2 chain and passed back, as queried, to vkCreateDevice so every feature
/// the device has is enabled. The structs live in native memory (their pNext pointers must not move); each is only
/// chained when the device's version or an extension defines it.
/// </summary>
internal sealed unsafe class FeatureChain : IDisposable
{
    private readonly PhysicalDeviceFeatures2* _root;
    private readonly PhysicalDevice16BitStorageFeatures* _s16;
    private readonly PhysicalDevice8BitStorageFeatures* _s8;
    private readonly PhysicalDeviceShaderFloat16Int8Features* _f16;
    private readonly PhysicalDeviceShaderIntegerDotProductFeatures* _dot;

    private FeatureChain(uint api, IReadOnlySet<string> ext)
    {
        bool v12 = api >= VulkanApi.MakeVersion(1, 2), v13 = api >= VulkanApi.MakeVersion(1, 3);
        _root = Alloc<PhysicalDeviceFeatures2>();
        _root->SType = StructureType.PhysicalDeviceFeatures2;
        void** tail = &_root->PNext;
        _s16 = Alloc<PhysicalDevice16BitStorageFeatures>();
        _s16->SType = StructureType.PhysicalDevice16BitStorageFeatures;
        *tail = _s16;
        tail = &_s16->PNext;
        if (v12 || ext.Contains("VK_KHR_8bit_storage"))
        {
            _s8 = Alloc<PhysicalDevice8BitStorageFeatures>();
            _s8->SType = StructureType.PhysicalDevice8BitStorageFeatures;
            *tail = _s8;
            tail = &_s8->PNext;
            if (!v12) Extensions.Add("VK_KHR_8bit_storage");
        }
        if (v12 || ext.Contains("VK_KHR_shader_float16_int8"))
        {
            _f16 = Alloc<PhysicalDeviceShaderFloat16Int8Features>();
            _f16->SType = StructureType.PhysicalDeviceShaderFloat16Int8Features;
            *tail = _f16;
            tail = &_f16->PNext;
            if (!v12) Extensions.Add("VK_KHR_shader_float16_int8");
        }
        if (v13 || ext.Contains("VK_KHR_shader_integer_dot_product"))
        {
            _dot = Alloc<PhysicalDeviceShaderIntegerDotProductFeatures>();
            _dot->SType = StructureType.PhysicalDeviceShaderIntegerDotProductFeatures;
            *tail = _dot;
            if (!v13) Extensions.Add("VK_KHR_shader_integer_dot_product");
        }
    }

    /// <summary>Device extensions the chained structs need enabled (on devices older than the version that made them core).</summary>
    public List<string> Extensions { get; } = [];

    /// <summary>The chain to pass as VkDeviceCreateInfo.pNext.</summary>
    public PhysicalDeviceFeatures2* Root => _root;

    /// <summary>storageBuffer16BitAccess.</summary>
    public bool Storage16 => _s16->StorageBuffer16BitAccess;
    /// <summary>storageBuffer8BitAccess.</summary>
    public bool Storage8 => _s8 is not null && _s8->StorageBuffer8BitAccess;
    /// <summary>shaderFloat16.</summary>
    public bool Float16 => _f16 is not null && _f16->ShaderFloat16;
    /// <summary>shaderInt8.</summary>
    public bool Int8 => _f16 is not null && _f16->ShaderInt8;
    /// <summary>shaderIntegerDotProduct.</summary>
    public bool IntegerDotProduct => _dot is not null && _dot->ShaderIntegerDotProduct;

    /// <summary>Queries the features of <paramref name="device"/> (a Vulkan 1.1 device; older ones report none).</summary>
    public static FeatureChain Query(Vk vk, PhysicalDevice device, uint api, IReadOnlySet<string> ext)
    {
        var chain = new FeatureChain(api, ext);
        if (api >= VulkanApi.MakeVersion(1, 1))
            vk.GetPhysicalDeviceFeatures2(device, chain._root);
        // Only the compute-relevant core features stay on: robustness and the rest are left as the driver defaults (off).
        PhysicalDeviceFeatures core = default;
        core.ShaderInt64 = chain._root->Features.ShaderInt64;
        core.ShaderInt16 = chain._root->Features.ShaderInt16;
        chain._root->Features = core;
        // Leave the 16-bit storage struct's uniform/push-constant/input-output members as queried: harmless to enable.
        return chain;
    }

    /// <summary>
    /// Turns off, before vkCreateDevice, the features <paramref name="disabled"/> names (SERVING_VULKAN_DISABLE): the
    /// device is then opened as one that lacks them, so the validation layer reports any shader that still uses one.
    /// </summary>
    public void Mask(IReadOnlySet<string> disabled)
    {
        if (disabled.Contains("storage16"))
        {
            _s16->StorageBuffer16BitAccess = false;
            _s16->UniformAndStorageBuffer16BitAccess = false;
            _s16->StoragePushConstant16 = false;
            _s16->StorageInputOutput16 = false;
        }
        if (disabled.Contains("storage8") && _s8 is not null)
        {
            _s8->StorageBuffer8BitAccess = false;
            _s8->UniformAndStorageBuffer8BitAccess = false;
            _s8->StoragePushConstant8 = false;
        }
        if (disabled.Contains("float16") && _f16 is not null) _f16->ShaderFloat16 = false;
        if (disabled.Contains("int-dot") && _dot is not null) _dot->ShaderIntegerDotProduct = false;
    }

    private static T* Alloc<T>() where T : unmanaged
    {
        var p = (T*)NativeMemory.AllocZeroed((nuint)sizeof(T));
        return p;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        NativeMemory.Free(_root);
        NativeMemory.Free(_s16);
        if (_s8 is not null) NativeMemory.Free(_s8);
        if (_f16 is not null) NativeMemory.Free(_f16);
        if (_dot is not null) NativeMemory.Free(_dot);
    }
}
