using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>
/// y = x / sqrt(mean(x²) + eps) · w, one workgroup per row. Shader: Shaders/rmsnorm.comp; the subgroup variant is
/// its SUBGROUP build (rmsnorm.subgroup.spv), offered only on devices with subgroup arithmetic in compute. Both
/// reduce in a fixed order within the row: batch-invariant.
/// </summary>
internal static class RmsNorm
{
    /// <summary>Bindings x, weight, y; push: rows, cols, eps.</summary>
    public static readonly KernelSpec Shared = new("rmsnorm", Bindings: 3, PushBytes: 12);

    /// <summary>The subgroup build of the same shader.</summary>
    public static readonly KernelSpec Subgroup = Shared with { Shader = "rmsnorm.subgroup" };

    private const uint Workgroup = 256;

    private static readonly KernelVariant SharedVariant = new("rmsnorm_f32_shared", OpKind.RmsNorm, DataType.F32, "shared-memory tree reduction, 256 per workgroup");
    private static readonly KernelVariant SubgroupVariant = new("rmsnorm_f32_subgroup", OpKind.RmsNorm, DataType.F32, "subgroupAdd, then a tree over the subgroups");

    private struct Push
    {
        public uint Rows, Cols;
        public float Eps;
    }

    /// <summary>The variants for <paramref name="type"/>: the subgroup one first where the device has subgroup arithmetic.</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, DataType type)
        => device.Facts.SubgroupArithmetic ? OpTable.F32Only(type, SubgroupVariant, SharedVariant) : OpTable.F32Only(type, SharedVariant);

    /// <summary>Records the op (arguments checked by the front end).</summary>
    public static void Record(VulkanStream s, in TensorView x, in TensorView weight, in TensorView y, float eps, KernelVariant variant)
    {
        Elementwise.CheckCount(s, "RmsNorm", (long)x.Rows * x.Cols);
        KernelSpec kernel = variant.Name == SubgroupVariant.Name ? Subgroup : Shared;
        var (gx, gy) = VulkanStream.Grid(x.Rows);
        s.Dispatch(kernel, [Workgroup], [BufferRange.Read(x), BufferRange.Read(weight), BufferRange.Write(y)],
            new Push { Rows = (uint)x.Rows, Cols = (uint)x.Cols, Eps = eps }, gx, gy);
    }
}
