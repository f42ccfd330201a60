using Serving.Abstractions;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>
/// What the Cuda backend runs and how: every op, every weight type the Cpu backend computes, f16 and f32 caches. The
/// variants of each op and type are built once (the front end asks per op), the default first. Warp kernels offer
/// their thread-block size (rows per block); MatMul also a tile of four activation rows per warp and a split-K form
/// that is not batch-invariant (it adds K's parts in another order than the default, so a reproducible stream refuses
/// it). On the CPU test device (serial lanes) the block sizes launch alike: the variants still run, same bits.
/// </summary>
internal static class Variants
{
    /// <summary>The weight types MatMul and Embed take.</summary>
    public static readonly DataType[] WeightTypes =
        [DataType.F32, DataType.F16, DataType.BF16, DataType.Q8_0, DataType.Q4_0, DataType.Q5_0, DataType.Q4_K, DataType.Q5_K, DataType.Q6_K];

    /// <summary>The cache types.</summary>
    public static readonly DataType[] CacheTypes = [DataType.F16, DataType.F32];

    private static readonly IReadOnlyList<KernelVariant> None = [];
    private static readonly Dictionary<(OpKind, DataType), IReadOnlyList<KernelVariant>> Table = Build();

    private static Dictionary<(OpKind, DataType), IReadOnlyList<KernelVariant>> Build()
    {
        var table = new Dictionary<(OpKind, DataType), IReadOnlyList<KernelVariant>>();
        foreach (DataType t in WeightTypes)
        {
            string type = t.Name();
            table[(OpKind.MatMul, t)] =
            [
                new($"matmul_{type}_warp", OpKind.MatMul, t, "the default: one warp per output element, lanes over K, four warps per block"),
                new($"matmul_{type}_block32", OpKind.MatMul, t, "one warp per thread block (32 threads)"),
                new($"matmul_{type}_block256", OpKind.MatMul, t, "eight warps per thread block (256 threads)"),
                new($"matmul_{type}_tile4", OpKind.MatMul, t, "four activation rows per warp share each weight load (T ≥ 2)") { AppliesTo = new VariantShapes(MinRows: 2) },
                new($"matmul_{type}_splitk4", OpKind.MatMul, t, "K in four parts, one warp each, added in a second pass: more warps for small T·N, another summation order") { BatchInvariant = false },
            ];
            table[(OpKind.Embed, t)] = [new($"embed_{type}_thread", OpKind.Embed, t, "the default: one thread per output element")];
        }
        foreach (DataType t in CacheTypes)
        {
            string type = t.Name();
            table[(OpKind.KvWrite, t)] = [new($"kvwrite_{type}_thread", OpKind.KvWrite, t, "the default: one thread per element")];
            table[(OpKind.Attention, t)] =
            [
                new($"attention_{type}_warp", OpKind.Attention, t, "the default: one warp per (row, head), online softmax, four warps per block"),
                new($"attention_{type}_block32", OpKind.Attention, t, "one warp per thread block"),
            ];
        }
        table[(OpKind.RmsNorm, DataType.F32)] =
        [
            new("rmsnorm_f32_warp", OpKind.RmsNorm, DataType.F32, "the default: one warp per row, four warps per block"),
            new("rmsnorm_f32_block32", OpKind.RmsNorm, DataType.F32, "one warp per thread block"),
        ];
        table[(OpKind.Argmax, DataType.F32)] =
        [
            new("argmax_f32_warp", OpKind.Argmax, DataType.F32, "the default: one warp per row, 64-bit max of (value, first index) keys, four warps per block"),
            new("argmax_f32_block32", OpKind.Argmax, DataType.F32, "one warp per thread block"),
        ];
        table[(OpKind.Rope, DataType.F32)] = [new("rope_f32_thread", OpKind.Rope, DataType.F32, "the default: one thread per rotated pair")];
        table[(OpKind.SwiGlu, DataType.F32)] = [new("swiglu_f32_thread", OpKind.SwiGlu, DataType.F32, "the default: one thread per element")];
        table[(OpKind.Add, DataType.F32)] = [new("add_f32_thread", OpKind.Add, DataType.F32, "the default: one thread per element")];
        table[(OpKind.Gather, DataType.F32)] = [new("gather_f32_thread", OpKind.Gather, DataType.F32, "the default: one thread per element")];
        table[(OpKind.Copy, DataType.F32)] = [new("copy_f32_memcpy", OpKind.Copy, DataType.F32, "the default: a device memcpy on the stream")];
        return table;
    }

    /// <summary>The variants of <paramref name="op"/> for <paramref name="type"/>; empty when unsupported.</summary>
    public static IReadOnlyList<KernelVariant> For(OpKind op, DataType type)
        => Table.TryGetValue((op, type), out var list) ? list : None;

    /// <summary>A MatMul variant's launch shape.</summary>
    public static MatMulVariant MatMulShape(KernelVariant v)
    {
        string what = v.Name[(v.Name.LastIndexOf('_') + 1)..];
        return what switch
        {
            "block32" => new MatMulVariant(1, 1, 1),
            "block256" => new MatMulVariant(1, 8, 1),
            "tile4" => new MatMulVariant(4, 4, 1),
            "splitk4" => new MatMulVariant(1, 4, 4),
            _ => new MatMulVariant(1, 4, 1),
        };
    }

    /// <summary>Warps per thread block of a warp kernel's variant (RmsNorm, Attention, Argmax).</summary>
    public static int WarpsPerGroup(KernelVariant v) => v.Name.EndsWith("_block32", StringComparison.Ordinal) ? 1 : 4;

    /// <summary>Answers a capability query without throwing.</summary>
    public static OpSupport Supports(in OpQuery q)
    {
        if (!Enum.IsDefined(q.Op))
            return OpSupport.No($"unknown op {(int)q.Op}");
        if (!Enum.IsDefined(q.Type))
            return OpSupport.No($"unknown type {(int)q.Type}");
        if (q.Op == OpKind.Copy)
            return OpSupport.Yes; // bytes are bytes
        if (!Table.ContainsKey((q.Op, q.Type)))
        {
            return OpSupport.No(q.Op switch
            {
                OpKind.MatMul or OpKind.Embed => $"{q.Op} takes weights of {string.Join(", ", WeightTypes.Select(t => t.Name()))}, not {q.Type.Name()}",
                OpKind.KvWrite or OpKind.Attention => $"{q.Op} needs an f16 or f32 cache, not {q.Type.Name()}",
                _ => $"{q.Op} works on f32, not {q.Type.Name()}",
            });
        }
        if (q.Rows < 0 || q.Cols < 0 || q.Heads < 0 || q.KvHeads < 0 || q.HeadDim < 0)
            return OpSupport.No($"{q}: negative dimensions");
        if (q.Op is OpKind.MatMul or OpKind.Embed && q.Cols % q.Type.BlockSize() != 0)
            return OpSupport.No($"{q.Op} {q.Type.Name()}: a row of {q.Cols} elements is not whole blocks of {q.Type.BlockSize()}");
        if (q.Op == OpKind.Attention && q.Heads > 0 && q.KvHeads > 0 && q.Heads % q.KvHeads != 0)
            return OpSupport.No($"{q}: Heads must be a multiple of KvHeads");
        return OpSupport.Yes;
    }
}
