using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>output = a + b (b the same shape, or one row broadcast over a's rows). Shader: Shaders/add.comp.</summary>
internal static class Add
{
    /// <summary>Bindings a, b, output; push: n, cols, broadcast.</summary>
    public static readonly KernelSpec Kernel = new("add", Bindings: 3, PushBytes: 12);

    private const uint Workgroup = 256;

    private static readonly KernelVariant Default = new("add_f32_wg256", OpKind.Add, DataType.F32, "one element per invocation, 256 per workgroup");

    private struct Push
    {
        public uint N, Cols, Broadcast;
    }

    /// <summary>The variants for <paramref name="type"/>.</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, DataType type) => OpTable.F32Only(type, Default);

    /// <summary>Records the op (arguments checked by the front end).</summary>
    public static void Record(VulkanStream s, in TensorView a, in TensorView b, in TensorView output, KernelVariant variant)
    {
        long n = (long)a.Rows * a.Cols;
        Elementwise.CheckCount(s, "Add", n);
        var push = new Push { N = (uint)n, Cols = (uint)a.Cols, Broadcast = b.Rows != a.Rows ? 1u : 0u };
        var (x, y) = VulkanStream.Grid((n + Workgroup - 1) / Workgroup);
        s.Dispatch(Kernel, [Workgroup], [BufferRange.Read(a), BufferRange.Read(b), BufferRange.Write(output)], push, x, y);
    }
}
