using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>Rotary embedding in place, Normal and NeoX pairing, partial rotation. Shader: Shaders/rope.comp.</summary>
internal static class Rope
{
    /// <summary>Bindings x (read-write), positions, inverse frequencies; push: total, heads, headDim, half, neox.</summary>
    public static readonly KernelSpec Kernel = new("rope", Bindings: 3, PushBytes: 20);

    private const uint Workgroup = 256;

    private static readonly KernelVariant Default = new("rope_f32_pair", OpKind.Rope, DataType.F32, "one (row, head, pair) per invocation, sin/cos in f32");

    private struct Push
    {
        public uint Total, Heads, HeadDim, Half, NeoX;
    }

    /// <summary>The variants for <paramref name="type"/>.</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, DataType type) => OpTable.F32Only(type, Default);

    /// <summary>Records the op (arguments checked by the front end; RotaryDim ≥ 2).</summary>
    public static void Record(VulkanStream s, in TensorView x, in TensorView positions, in RopeConfig config, KernelVariant variant)
    {
        int half = config.RotaryDim / 2;
        long total = (long)x.Rows * config.Heads * half;
        Elementwise.CheckCount(s, "Rope", (long)x.Rows * x.Cols);
        var push = new Push
        {
            Total = (uint)total,
            Heads = (uint)config.Heads,
            HeadDim = (uint)config.HeadDim,
            Half = (uint)half,
            NeoX = config.Style == RopeStyle.NeoX ? 1u : 0u,
        };
        var (gx, gy) = VulkanStream.Grid((total + Workgroup - 1) / Workgroup);
        s.Dispatch(Kernel, [Workgroup], [BufferRange.Write(x), BufferRange.Read(positions), BufferRange.Read(config.InverseFrequencies)], push, gx, gy);
    }
}
