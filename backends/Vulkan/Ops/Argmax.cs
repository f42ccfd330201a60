using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>
/// Index of the largest value per row (first on ties, NaN never wins, all-NaN gives 0), one workgroup per row.
/// Shader: Shaders/argmax.comp; its SUBGROUP build where the device has subgroup arithmetic.
/// </summary>
internal static class Argmax
{
    /// <summary>Bindings logits, output; push: rows, cols.</summary>
    public static readonly KernelSpec Shared = new("argmax", Bindings: 2, PushBytes: 8);

    /// <summary>The subgroup build of the same shader.</summary>
    public static readonly KernelSpec Subgroup = Shared with { Shader = "argmax.subgroup" };

    private const uint Workgroup = 256;

    private static readonly KernelVariant SharedVariant = new("argmax_f32_shared", OpKind.Argmax, DataType.F32, "shared-memory tree of (value, index), 256 per workgroup");
    private static readonly KernelVariant SubgroupVariant = new("argmax_f32_subgroup", OpKind.Argmax, DataType.F32, "subgroupMax/subgroupMin, then a tree over the subgroups");

    private struct Push
    {
        public uint Rows, Cols;
    }

    /// <summary>The variants for <paramref name="type"/>.</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, DataType type)
        => device.Facts.SubgroupArithmetic ? OpTable.F32Only(type, SubgroupVariant, SharedVariant) : OpTable.F32Only(type, SharedVariant);

    /// <summary>Records the op (arguments checked by the front end).</summary>
    public static void Record(VulkanStream s, in TensorView logits, in TensorView output, KernelVariant variant)
    {
        Elementwise.CheckCount(s, "Argmax", (long)logits.Rows * logits.Cols);
        KernelSpec kernel = variant.Name == SubgroupVariant.Name ? Subgroup : Shared;
        var (x, y) = VulkanStream.Grid(logits.Rows);
        s.Dispatch(kernel, [Workgroup], [BufferRange.Read(logits), BufferRange.Write(output)], new Push { Rows = (uint)logits.Rows, Cols = (uint)logits.Cols }, x, y);
    }
}
