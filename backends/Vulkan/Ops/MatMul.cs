using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>
/// y[T, N] = x[T, K] · W[N, K]ᵀ for every weight type, reading W's GGUF blocks directly (no dequantized copy).
/// Shader: Shaders/matmul.comp (constant_id 3 = the ggml type id, 4 = x rows per workgroup), its SUBGROUP build where
/// the device has subgroup shuffles. Workgroups of 64 = two lane groups of 32, each computing <see cref="Rows"/> weight
/// rows for TILE x rows. Every variant, the subgroup and shared builds, and every T give bit-identical rows: the shader
/// fixes each row's order of additions (one 32-lane tree), so all variants are batch-invariant and the default may pick
/// the tile by T. A weight larger than one binding may span is multiplied in row windows, one dispatch each.
/// <para>
/// Two families, one per device (the variants of a device must all give the same bits, and the two families add in
/// different orders): the lane-tree family above (matmul.comp: neighbouring lanes read neighbouring blocks, which a
/// GPU coalesces), and on CPU Vulkan drivers (lavapipe) the row family (matmul_rows.comp: one weight row per
/// invocation, so every x load is the same for all SIMD lanes and is one broadcast load instead of one load per lane,
/// and nothing is reduced across lanes; ~10× faster there). <c>SERVING_VULKAN_MATMUL=tree|rows</c> forces a family
/// (to test both on one device).
/// </para>
/// </summary>
internal static class MatMul
{
    /// <summary>Bindings x, W (a row window), y; push: T, N (window rows), K, first row, y stride, row bytes.</summary>
    public static readonly KernelSpec Shared = new("matmul", Bindings: 3, PushBytes: 24);

    /// <summary>The subgroup build of the same shader.</summary>
    public static readonly KernelSpec Subgroup = Shared with { Shader = "matmul.subgroup" };

    /// <summary>The row family (one weight row per invocation), same bindings and push constants.</summary>
    public static readonly KernelSpec RowKernel = Shared with { Shader = "matmul_rows" };

    private static readonly uint RowWorkgroup = EnvUint("SERVING_VULKAN_MATMUL_WG", 32);  // invocations per workgroup of the row family
    private static readonly uint RowRows = EnvUint("SERVING_VULKAN_MATMUL_ROWS", 8);      // weight rows per invocation

    private static uint EnvUint(string name, uint fallback) =>
        uint.TryParse(Environment.GetEnvironmentVariable(name), System.Globalization.CultureInfo.InvariantCulture, out uint v) && v > 0 ? v : fallback;

    /// <summary>True when <paramref name="device"/> uses the row family: CPU drivers, unless SERVING_VULKAN_MATMUL says.</summary>
    public static bool UsesRows(VulkanAccelerator device) => Environment.GetEnvironmentVariable("SERVING_VULKAN_MATMUL") switch
    {
        "rows" => true,
        "tree" => false,
        _ => device.Facts.Type == Silk.NET.Vulkan.PhysicalDeviceType.Cpu,
    };

    private const uint Workgroup = 64;  // 2 lane groups of 32
    private const uint Rows = 2;        // weight rows per lane group

    private struct Push
    {
        public uint T, N, K, FirstRow, YStride, RowBytes;
    }

    /// <summary>What a variant fixes: the build and the x rows per workgroup (0 = chosen from T).</summary>
    private readonly record struct Choice(bool UseSubgroup, uint Tile, bool UseRows);

    private static readonly DataType[] Types =
        [DataType.F32, DataType.F16, DataType.BF16, DataType.Q8_0, DataType.Q4_0, DataType.Q5_0, DataType.Q4_K, DataType.Q5_K, DataType.Q6_K];

    /// <summary>The variants for weight type <paramref name="type"/>: the default (tile chosen from T), then each build
    /// with one x row and with 8 x rows per workgroup.</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, DataType type)
    {
        if (!Types.Contains(type)) return [];
        string t = type.Name();
        if (UsesRows(device))
            return
            [
                new($"matmul_{t}_rows_auto", OpKind.MatMul, type, "one weight row per invocation (CPU drivers: x loads broadcast), 1 x row per workgroup at T = 1, 4 at T < 8, else 8"),
                new($"matmul_{t}_rows_t1", OpKind.MatMul, type, "one weight row per invocation, 1 x row per workgroup (decode)"),
                new($"matmul_{t}_rows_t8", OpKind.MatMul, type, "one weight row per invocation, 8 x rows per workgroup: each weight byte read once per 8 rows"),
                new($"matmul_{t}_rows_t16", OpKind.MatMul, type, "one weight row per invocation, 16 x rows per workgroup"),
            ];
        var list = new List<KernelVariant>
        {
            new($"matmul_{t}_auto", OpKind.MatMul, type,
                $"{(device.Facts.SubgroupShuffle ? "subgroup-shuffle" : "shared-memory")} lane tree, 1 x row per workgroup at T = 1, 4 at T < 8, else 8"),
        };
        foreach (bool sub in device.Facts.SubgroupShuffle ? new[] { true, false } : [false])
        {
            string build = sub ? "subgroup" : "shared";
            list.Add(new($"matmul_{t}_{build}_t1", OpKind.MatMul, type, $"{build} lane tree, 1 x row per workgroup (decode)"));
            list.Add(new($"matmul_{t}_{build}_t8", OpKind.MatMul, type, $"{build} lane tree, 8 x rows per workgroup: each weight byte read once per 8 rows"));
        }
        return list;
    }

    private static Choice Decode(VulkanStream s, KernelVariant variant)
    {
        string name = variant.Name;
        bool rows = name.Contains("_rows_", StringComparison.Ordinal);
        uint tile = name.EndsWith("_t16", StringComparison.Ordinal) ? 16u : name.EndsWith("_t8", StringComparison.Ordinal) ? 8u
            : name.EndsWith("_t1", StringComparison.Ordinal) ? 1u : 0u;
        if (rows) return new(false, tile, true);
        if (name.EndsWith("_auto", StringComparison.Ordinal)) return new(s.Accelerator.Facts.SubgroupShuffle, 0, false);
        return new(name.Contains("_subgroup_", StringComparison.Ordinal), tile, false);
    }

    /// <summary>Records the op (arguments checked by the front end).</summary>
    public static void Record(VulkanStream s, in TensorView x, VulkanWeight weight, in TensorView y, KernelVariant variant)
    {
        Choice choice = Decode(s, variant);
        int t = x.Rows, k = x.Cols;
        uint tile = choice.Tile != 0 ? choice.Tile : t == 1 ? 1u : t < 8 ? 4u : 8u;
        KernelSpec kernel = choice.UseRows ? RowKernel : choice.UseSubgroup ? Subgroup : Shared;
        Elementwise.CheckCount(s, "MatMul", Math.Max((long)t * k, (long)t * weight.Rows));
        uint rowsPerGroup = choice.UseRows ? RowWorkgroup * RowRows : Rows * (Workgroup / 32);
        uint[] constants = choice.UseRows ? [RowWorkgroup, RowRows, 0, (uint)weight.Type, tile] : [Workgroup, Rows, 0, (uint)weight.Type, tile];
        uint tiles = (uint)((t + tile - 1) / tile);
        foreach (var (first, rows, offset) in weight.RowWindows(s.Accelerator.MaxBindingBytes))
        {
            var window = new BufferRange(weight.Buffer, offset, rows * weight.RowBytes, false);
            var (gx, gy) = VulkanStream.Grid((rows + rowsPerGroup - 1) / rowsPerGroup);
            var push = new Push
            {
                T = (uint)t,
                N = (uint)rows,
                K = (uint)k,
                FirstRow = (uint)first,
                YStride = (uint)y.Cols,
                RowBytes = (uint)weight.RowBytes,
            };
            s.Dispatch(kernel, constants, [BufferRange.Read(x), window, BufferRange.Write(y)], push, gx, gy, tiles);
        }
    }
}
