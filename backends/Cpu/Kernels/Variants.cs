using Serving.Abstractions;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// The kernel variants of this backend, per (op, type); the first of each list is the default. MatMul has three per
/// weight type (the driver's <see cref="MatMulKernel"/>) — two for the K-quants, which have no rows4 kernel (at
/// decode their cost is unpacking the weights, which sharing x loads does not reduce) — plus the default kernel on one
/// thread (<c>…_serial</c>), all bit-identical to each other; every other op has one per type. Every variant applies to every shape and is batch-invariant (the contract's
/// defaults, <see cref="KernelVariant.AppliesTo"/> and <see cref="KernelVariant.BatchInvariant"/>): no CPU kernel splits
/// a row's reduction across rows or workers. The lists are built once; <see cref="For"/> returns the same instances on
/// every call (the front end asks per op).
/// </summary>
internal static class Variants
{
    /// <summary>Weight types MatMul and Embed accept.</summary>
    public static readonly DataType[] WeightTypes =
        [DataType.F32, DataType.F16, DataType.BF16, DataType.Q8_0, DataType.Q4_0, DataType.Q5_0, DataType.Q4_K, DataType.Q5_K, DataType.Q6_K];

    /// <summary>The weight type names for messages ("f32, f16, …").</summary>
    public static readonly string WeightTypeNames = string.Join(", ", WeightTypes.Select(t => t.Name()));

    private static readonly Dictionary<(OpKind, DataType), KernelVariant[]> Table = Build();

    /// <summary>The variants of <paramref name="op"/> for <paramref name="type"/>; empty when unsupported.</summary>
    public static IReadOnlyList<KernelVariant> For(OpKind op, DataType type)
        => Table.TryGetValue((op, type), out KernelVariant[]? list) ? list : [];

    /// <summary>Whether a MatMul variant of this table runs on the calling thread alone (<c>…_serial</c>).</summary>
    public static bool IsSerial(KernelVariant variant) => variant.Name.EndsWith(SerialSuffix, StringComparison.Ordinal);

    private const string SerialSuffix = "_serial";

    // The default kernel on one thread: the tuner's thread-count choice per (op, shape, batch).
    private static KernelVariant Serial(KernelVariant first) =>
        new(first.Name + SerialSuffix, OpKind.MatMul, first.WeightType,
            $"as {first.Name}, every tile on the calling thread: no workers woken and no join, which pays where an op is too small " +
            "to be worth waking them or the other cores are busy");

    /// <summary>The driver's inner loop for a MatMul variant of this table.</summary>
    public static MatMulKernel KernelOf(KernelVariant variant)
        => IsSerial(variant) ? KernelOf(variant.Name[..^SerialSuffix.Length])
         : KernelOf(variant.Name);

    private static MatMulKernel KernelOf(string name)
        => name.EndsWith("_rows1", StringComparison.Ordinal) ? MatMulKernel.Rows1
         : name.EndsWith("_rows4", StringComparison.Ordinal) ? MatMulKernel.Rows4
         : MatMulKernel.Tile;

    private static Dictionary<(OpKind, DataType), KernelVariant[]> Build()
    {
        var table = new Dictionary<(OpKind, DataType), KernelVariant[]>();
        foreach (DataType t in WeightTypes)
        {
            string name = t.Name();
            table[(OpKind.Embed, t)] = [new($"embed_{name}_dequant", OpKind.Embed, t, $"dequantizes each table row ({name} → f32)")];
            if (t.BlockSize() == 256)
            {
                const string kHow = "x quantized to q8 blocks once; per 32 elements an exact integer dot, scaled per (sub-)block in f32";
                table[(OpKind.MatMul, t)] =
                [
                    new($"matmul_{name}_tile4x1", OpKind.MatMul, t, $"each weight super-block unpacked once for 4 x rows, weight rows split over workers ({kHow})"),
                    new($"matmul_{name}_rows1", OpKind.MatMul, t, $"one weight row per x row, the plain loop ({kHow})"),
                ];
                table[(OpKind.MatMul, t)] = [.. table[(OpKind.MatMul, t)], Serial(table[(OpKind.MatMul, t)][0])];
                continue;
            }
            string how = t.IsQuantized()
                ? "x quantized to q8 blocks once, exact int8 block dots"
                : t == DataType.F32 ? "f32 FMA" : $"{name} widened to f32 in registers, f32 FMA";
            string tile = t.IsQuantized()
                ? $"matmul_{name}_tile4x2"
                : $"matmul_{name}_tile2x2";
            string tileHow = t.IsQuantized()
                ? "4 x rows × 2 weight rows per register tile: each weight block loaded once for 4 x rows"
                : "2 x rows × 2 weight rows per register tile: each loaded vector serves 2 dots";
            table[(OpKind.MatMul, t)] =
            [
                new(tile, OpKind.MatMul, t, $"{tileHow}, weight rows split over workers ({how})"),
                new($"matmul_{name}_rows4", OpKind.MatMul, t, $"4 weight rows per pass share each activation load ({how})"),
                new($"matmul_{name}_rows1", OpKind.MatMul, t, $"one weight row per pass, the plain loop ({how})"),
            ];
            table[(OpKind.MatMul, t)] = [.. table[(OpKind.MatMul, t)], Serial(table[(OpKind.MatMul, t)][0])];
        }
        table[(OpKind.RmsNorm, DataType.F32)] = [new("rmsnorm_f32_rows", OpKind.RmsNorm, DataType.F32, "one row per work item, vector sum of squares")];
        table[(OpKind.Rope, DataType.F32)] = [new("rope_f32_rows", OpKind.Rope, DataType.F32, "one row per work item, cos/sin per row shared by all heads")];
        table[(OpKind.KvWrite, DataType.F32)] = [new("kvwrite_f32_copy", OpKind.KvWrite, DataType.F32, "row copies into the paged f32 cache")];
        table[(OpKind.KvWrite, DataType.F16)] = [new("kvwrite_f16_round", OpKind.KvWrite, DataType.F16, "rows rounded to f16 (nearest even) with vector bit arithmetic into the paged cache")];
        table[(OpKind.Attention, DataType.F32)] = [new("attention_f32_twopass", OpKind.Attention, DataType.F32, "one (row, kv head) per work item, scores then max-subtracted softmax, f32 cache")];
        table[(OpKind.Attention, DataType.F16)] = [new("attention_f16_twopass", OpKind.Attention, DataType.F16, "as attention_f32_twopass, K and V read as f16 and widened to f32 in registers")];
        table[(OpKind.Gather, DataType.F32)] = [new("gather_f32_rows", OpKind.Gather, DataType.F32, "one row copy per gathered row, rows spread over the workers")];
        table[(OpKind.SwiGlu, DataType.F32)] = [new("swiglu_f32_simd", OpKind.SwiGlu, DataType.F32, "vector exp, chunks of the flat tensor per work item")];
        table[(OpKind.Add, DataType.F32)] = [new("add_f32_simd", OpKind.Add, DataType.F32, "vector add, chunks of the flat tensor per work item (a broadcast row: one row per work item)")];
        table[(OpKind.Argmax, DataType.F32)] = [new("argmax_f32_simd", OpKind.Argmax, DataType.F32, "vector max then first index holding it, one row per work item")];
        foreach (DataType t in Enum.GetValues<DataType>())
            table[(OpKind.Copy, t)] = [new($"copy_{t.Name()}_chunked", OpKind.Copy, t, "memcpy split into chunks across the workers")];
        return table;
    }
}
