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
/// <para>
/// q8_0, q4_0 and q5_0 weights use the int8 family in either arrangement (matmul_int8.comp, matmul_int8_rows.comp):
/// x is quantized once per step to int8 blocks of 32 (<see cref="QuantizeQ8"/>, as the Cpu backend does), and each
/// block's dot product with the weight's quants is an exact integer — one OpSDot per 4 bytes in the int_dot builds
/// (offered where the device has VK_KHR_shader_integer_dot_product), exact float products otherwise — so the builds
/// with and without the feature give the same bits and are variants of one family. <c>SERVING_VULKAN_MATMUL_X=f32</c>
/// keeps f32 x for these types (the family every other type uses).
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

    /// <summary>The 16-bit-storage builds of the f32 family (f16 weights read as f16vec2): shared, subgroup, rows.</summary>
    private static readonly KernelSpec SharedStorage16 = Shared with { Shader = "matmul.storage16" };
    private static readonly KernelSpec SubgroupStorage16 = Shared with { Shader = "matmul.subgroup.storage16" };
    private static readonly KernelSpec RowStorage16 = Shared with { Shader = "matmul_rows.storage16" };

    /// <summary>The int8 family (binding 0 is x quantized, <see cref="QuantizeQ8"/>), lane-tree arrangement: the
    /// builds without and with subgroup shuffles and integer dot product.</summary>
    private static readonly KernelSpec[] Int8Tree =
    [
        Shared with { Shader = "matmul_int8" },
        Shared with { Shader = "matmul_int8.subgroup" },
        Shared with { Shader = "matmul_int8.int_dot" },
        Shared with { Shader = "matmul_int8.subgroup.int_dot" },
    ];

    /// <summary>The int8 family, row arrangement: without and with integer dot product.</summary>
    private static readonly KernelSpec[] Int8Rows =
    [
        Shared with { Shader = "matmul_int8_rows" },
        Shared with { Shader = "matmul_int8_rows.int_dot" },
    ];

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

    /// <summary>True when weights of <paramref name="type"/> use the int8 family (x quantized): q8_0, q4_0 and q5_0,
    /// unless SERVING_VULKAN_MATMUL_X=f32.</summary>
    public static bool UsesInt8(DataType type)
        => type is DataType.Q8_0 or DataType.Q4_0 or DataType.Q5_0 && Environment.GetEnvironmentVariable("SERVING_VULKAN_MATMUL_X") != "f32";

    private const uint Workgroup = 64;  // 2 lane groups of 32
    private const uint Rows = 2;        // weight rows per lane group

    private struct Push
    {
        public uint T, N, K, FirstRow, YStride, RowBytes;
    }

    /// <summary>What a variant fixes: the arrangement, the activation format, the builds, the x rows per workgroup
    /// (constant_id 4; 0 = chosen from T) and the weight rows per invocation or lane group (constant_id 1; 0 = the
    /// arrangement's default). Null builds (auto) are chosen from the device. None of these changes a row's additions.</summary>
    private readonly record struct Choice(bool UseRows, bool Int8, bool? Dot, bool? UseSubgroup, uint Tile, bool? Storage16 = null, uint RowsPer = 0);

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Choice> Choices = new(StringComparer.Ordinal);

    private static readonly DataType[] Types =
        [DataType.F32, DataType.F16, DataType.BF16, DataType.Q8_0, DataType.Q4_0, DataType.Q5_0, DataType.Q4_K, DataType.Q5_K, DataType.Q6_K];

    /// <summary>The variants for weight type <paramref name="type"/>: the default (tile chosen from T, builds from the
    /// device), then each build the device can run with one x row and with 8 x rows per workgroup. All of them give
    /// the same bits (one family per device and type).</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, DataType type)
    {
        if (!Types.Contains(type)) return [];
        string t = type.Name();
        var list = new List<KernelVariant>();
        void Add(string name, string description, Choice choice)
        {
            Choices[name] = choice;
            list.Add(new KernelVariant(name, OpKind.MatMul, type, description));
        }
        bool rows = UsesRows(device);
        if (UsesInt8(type))
        {
            bool dot = device.Facts.IntegerDotProduct;
            string[] builds = dot ? ["dot", "fma"] : ["fma"];
            string How(string build) => build == "dot" ? "int8 dot products (OpSDot)" : "exact int8 products as floats";
            if (rows)
            {
                Add($"matmul_{t}_int8_rows_auto", $"x quantized to int8 once per step, one weight row set per invocation (CPU drivers), {How(AutoDot(device) ? "dot" : "fma")}, 1 x row per workgroup at T = 1, 4 at T < 8, else 8",
                    new(true, true, null, false, 0));
                Add($"matmul_{t}_int8_rows_t1_r4", $"int8 x, row arrangement, the default build, 1 x row per workgroup, 4 weight rows per invocation (twice the invocations)", new(true, true, null, false, 1, RowsPer: 4));
                foreach (string b in builds)
                {
                    Add($"matmul_{t}_int8_rows_{b}_t1", $"int8 x, row arrangement, {How(b)}, 1 x row per workgroup (decode)", new(true, true, b == "dot", false, 1));
                    Add($"matmul_{t}_int8_rows_{b}_t8", $"int8 x, row arrangement, {How(b)}, 8 x rows per workgroup", new(true, true, b == "dot", false, 8));
                }
                return list;
            }
            Add($"matmul_{t}_int8_auto", $"x quantized to int8 once per step, {(device.Facts.SubgroupShuffle ? "subgroup-shuffle" : "shared-memory")} lane tree, {How(AutoDot(device) ? "dot" : "fma")}, 1 x row per workgroup at T = 1, 4 at T < 8, else 8",
                new(false, true, null, null, 0));
            Add($"matmul_{t}_int8_t1_r4", "int8 x, the default lane-tree build, 1 x row per workgroup, 4 weight rows per lane group", new(false, true, null, null, 1, RowsPer: 4));
            foreach (bool sub in device.Facts.SubgroupShuffle ? new[] { true, false } : [false])
                foreach (string b in builds)
                {
                    string build = sub ? "subgroup" : "shared";
                    Add($"matmul_{t}_int8_{build}_{b}_t1", $"int8 x, {build} lane tree, {How(b)}, 1 x row per workgroup (decode)", new(false, true, b == "dot", sub, 1));
                    Add($"matmul_{t}_int8_{build}_{b}_t8", $"int8 x, {build} lane tree, {How(b)}, 8 x rows per workgroup", new(false, true, b == "dot", sub, 8));
                }
            return list;
        }
        // f16 weights: where the device has 16-bit storage, one build reads halves as f16vec2 and one from 32-bit words
        // (the same bits). The tile variants use the device's default (DeviceFacts.PrefersStorage16); one more variant at T = 1
        // runs the other build, so the tuner and the suite see both.
        bool both = type == DataType.F16 && device.Facts.Storage16;
        bool s16 = type == DataType.F16 && device.Facts.PrefersStorage16;
        string halves = type != DataType.F16 ? "" : s16 ? ", halves read as f16vec2 (16-bit storage)" : ", halves from 32-bit words";
        string other = s16 ? "words" : "storage16";
        string otherHow = s16 ? "halves from 32-bit words (no 16-bit storage)" : "halves read as f16vec2 (16-bit storage)";
        if (rows)
        {
            Add($"matmul_{t}_rows_auto", $"one weight row per invocation (CPU drivers: x loads broadcast), 1 x row per workgroup at T = 1, 4 at T < 8, else 8{halves}", new(true, false, false, false, 0));
            Add($"matmul_{t}_rows_t1", $"one weight row per invocation, 1 x row per workgroup (decode){halves}", new(true, false, false, false, 1));
            Add($"matmul_{t}_rows_t1_r4", $"4 weight rows per invocation (twice the invocations), 1 x row per workgroup{halves}", new(true, false, false, false, 1, RowsPer: 4));
            Add($"matmul_{t}_rows_t8", $"one weight row per invocation, 8 x rows per workgroup: each weight byte read once per 8 rows{halves}", new(true, false, false, false, 8));
            Add($"matmul_{t}_rows_t16", $"one weight row per invocation, 16 x rows per workgroup{halves}", new(true, false, false, false, 16));
            if (both)
                Add($"matmul_{t}_rows_{other}_t1", $"one weight row per invocation, 1 x row per workgroup, {otherHow}", new(true, false, false, false, 1, !s16));
            return list;
        }
        Add($"matmul_{t}_auto", $"{(device.Facts.SubgroupShuffle ? "subgroup-shuffle" : "shared-memory")} lane tree, 1 x row per workgroup at T = 1, 4 at T < 8, else 8{halves}",
            new(false, false, false, null, 0));
        Add($"matmul_{t}_t1_r4", $"the default lane-tree build, 1 x row per workgroup, 4 weight rows per lane group{halves}", new(false, false, false, null, 1, RowsPer: 4));
        foreach (bool sub in device.Facts.SubgroupShuffle ? new[] { true, false } : [false])
        {
            string build = sub ? "subgroup" : "shared";
            Add($"matmul_{t}_{build}_t1", $"{build} lane tree, 1 x row per workgroup (decode){halves}", new(false, false, false, sub, 1));
            Add($"matmul_{t}_{build}_t8", $"{build} lane tree, 8 x rows per workgroup: each weight byte read once per 8 rows{halves}", new(false, false, false, sub, 8));
        }
        if (both)
            Add($"matmul_{t}_shared_{other}_t1", $"shared lane tree, 1 x row per workgroup, {otherHow}", new(false, false, false, false, 1, !s16));
        return list;
    }

    /// <summary>Whether the default int8 variant uses the integer-dot build: where the device has the feature, unless
    /// SERVING_VULKAN_INT_DOT=0 (the exact-float build gives the same bits, so this is only a question of speed).</summary>
    private static bool AutoDot(VulkanAccelerator device) => device.Facts.IntegerDotProduct && Environment.GetEnvironmentVariable("SERVING_VULKAN_INT_DOT") != "0";

    /// <summary>Records the op (arguments checked by the front end).</summary>
    public static void Record(VulkanStream s, in TensorView x, VulkanWeight weight, in TensorView y, KernelVariant variant)
    {
        if (!Choices.TryGetValue(variant.Name, out Choice choice))
            throw new ArgumentException($"MatMul: unknown Vulkan variant '{variant.Name}'", nameof(variant));
        VulkanAccelerator device = s.Accelerator;
        int t = x.Rows, k = x.Cols;
        uint tile = choice.Tile != 0 ? choice.Tile : t == 1 ? 1u : t < 8 ? 4u : 8u;
        bool sub = choice.UseSubgroup ?? device.Facts.SubgroupShuffle;
        bool dot = choice.Dot ?? AutoDot(device);
        KernelSpec kernel = choice switch
        {
            { Int8: true, UseRows: true } => Int8Rows[dot ? 1 : 0],
            { Int8: true } => Int8Tree[(sub ? 1 : 0) + (dot ? 2 : 0)],
            _ when weight.Type == DataType.F16 && (choice.Storage16 ?? device.Facts.PrefersStorage16) =>
                choice.UseRows ? RowStorage16 : sub ? SubgroupStorage16 : SharedStorage16,
            { UseRows: true } => RowKernel,
            _ => sub ? Subgroup : Shared,
        };
        Elementwise.CheckCount(s, "MatMul", Math.Max((long)t * k, (long)t * weight.Rows));
        BufferRange input = choice.Int8 ? QuantizeQ8.Record(s, x) : BufferRange.Read(x);
        uint rowsPer = choice.RowsPer != 0 ? choice.RowsPer : choice.UseRows ? RowRows : Rows;
        uint rowsPerGroup = choice.UseRows ? RowWorkgroup * rowsPer : rowsPer * (Workgroup / 32);
        uint[] constants = choice.UseRows ? [RowWorkgroup, rowsPer, 0, (uint)weight.Type, tile] : [Workgroup, rowsPer, 0, (uint)weight.Type, tile];
        uint tiles = (uint)((t + tile - 1) / tile);
        foreach (var (first, rows, offset) in weight.RowWindows(device.MaxBindingBytes))
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
            s.Dispatch(kernel, constants, [input, window, BufferRange.Write(y)], push, gx, gy, tiles);
        }
    }
}
