using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>
/// k and v rows into their slots of one layer of a <see cref="VulkanKvCache"/> (f16 packed in words, or f32).
/// Shader: Shaders/kvwrite.comp (constant_id 3 picks f16). Binds only the layer's K and V planes, so a slot value out
/// of range (skipped by the shader) could not reach another layer anyway.
/// </summary>
internal static class KvWrite
{
    /// <summary>Bindings k, v, slots, K plane, V plane; push: total, row elements, row words, slots per layer.</summary>
    public static readonly KernelSpec Kernel = new("kvwrite", Bindings: 5, PushBytes: 16);

    private const uint Workgroup = 256;

    private static readonly KernelVariant F16 = new("kvwrite_f16_packed", OpKind.KvWrite, DataType.F16, "two halves per 32-bit word (packHalf2x16), no 16-bit storage needed");
    private static readonly KernelVariant F32 = new("kvwrite_f32_words", OpKind.KvWrite, DataType.F32, "one float per word");

    private struct Push
    {
        public uint Total, RowElements, RowWords, SlotsPerLayer;
    }

    /// <summary>The variants for cache type <paramref name="type"/>.</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, DataType type)
        => type == DataType.F16 ? [F16] : type == DataType.F32 ? [F32] : [];

    /// <summary>Records the op (arguments checked by the front end; slot values are skipped when out of range).</summary>
    public static void Record(VulkanStream s, in TensorView k, in TensorView v, VulkanKvCache cache, int layer, in TensorView slots, KernelVariant variant)
    {
        KvCacheLayout layout = cache.Layout;
        long total = k.Rows * cache.RowWords;
        Elementwise.CheckCount(s, "KvWrite", Math.Max(total, cache.Layout.SlotsPerLayer * cache.RowWords));
        var push = new Push
        {
            Total = (uint)total,
            RowElements = (uint)layout.RowElements,
            RowWords = (uint)cache.RowWords,
            SlotsPerLayer = (uint)layout.SlotsPerLayer,
        };
        var (x, y) = VulkanStream.Grid((total + Workgroup - 1) / Workgroup);
        uint f16 = layout.Type == DataType.F16 ? 1u : 0u;
        s.Dispatch(Kernel, [Workgroup, 1, 0, f16],
            [BufferRange.Read(k), BufferRange.Read(v), BufferRange.Read(slots),
             BufferRange.Cache(cache, cache.KOffset(layer), cache.PlaneBytes, writes: true),
             BufferRange.Cache(cache, cache.VOffset(layer), cache.PlaneBytes, writes: true)], push, x, y);
    }
}
