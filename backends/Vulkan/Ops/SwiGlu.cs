using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>output = silu(gate) · up. Shader: Shaders/swiglu.comp.</summary>
internal static class SwiGlu
{
    /// <summary>Bindings gate, up, output; push: n.</summary>
    public static readonly KernelSpec Kernel = new("swiglu", Bindings: 3, PushBytes: 4);

    private const uint Workgroup = 256;

    private static readonly KernelVariant Default = new("swiglu_f32_wg256", OpKind.SwiGlu, DataType.F32, "one element per invocation, 256 per workgroup");

    private struct Push
    {
        public uint N;
    }

    /// <summary>The variants for <paramref name="type"/>.</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, DataType type) => OpTable.F32Only(type, Default);

    /// <summary>Records the op (arguments checked by the front end).</summary>
    public static void Record(VulkanStream s, in TensorView gate, in TensorView up, in TensorView output, KernelVariant variant)
    {
        long n = (long)gate.Rows * gate.Cols;
        Elementwise.CheckCount(s, "SwiGlu", n);
        var (x, y) = VulkanStream.Grid((n + Workgroup - 1) / Workgroup);
        s.Dispatch(Kernel, [Workgroup], [BufferRange.Read(gate), BufferRange.Read(up), BufferRange.Write(output)], new Push { N = (uint)n }, x, y);
    }
}
