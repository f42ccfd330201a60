using Serving.Abstractions;

namespace Serving.Backends.Scalar;

/// <summary>
/// What the scalar device runs: every op, every weight type for MatMul and Embed, f16 and f32 caches. One variant per
/// op and type (plain loops), built once so <see cref="Variants"/> returns the same list on every call.
/// </summary>
internal static class Capabilities
{
    /// <summary>The weight types MatMul and Embed take.</summary>
    public static readonly DataType[] WeightTypes =
        [DataType.F32, DataType.F16, DataType.BF16, DataType.Q8_0, DataType.Q4_0, DataType.Q5_0, DataType.Q4_K, DataType.Q5_K, DataType.Q6_K];

    private static readonly IReadOnlyList<KernelVariant> None = [];
    private static readonly Dictionary<(OpKind, DataType), IReadOnlyList<KernelVariant>> Table = Build();

    private static Dictionary<(OpKind, DataType), IReadOnlyList<KernelVariant>> Build()
    {
        var table = new Dictionary<(OpKind, DataType), IReadOnlyList<KernelVariant>>();
        void Add(OpKind op, DataType type)
        {
            // <op>_<type>_<what-changed>: op lower case, the type as DataTypes.Name spells it (ggml's "q4_K").
            string name = $"{op.ToString().ToLowerInvariant()}_{type.Name()}_scalar";
            table[(op, type)] = [new KernelVariant(name, op, type, "the default: plain scalar loops, one row at a time")];
        }
        foreach (DataType t in WeightTypes)
        {
            Add(OpKind.MatMul, t);
            Add(OpKind.Embed, t);
        }
        foreach (DataType t in (DataType[])[DataType.F16, DataType.F32])
        {
            Add(OpKind.KvWrite, t);
            Add(OpKind.Attention, t);
        }
        foreach (OpKind op in (OpKind[])[OpKind.RmsNorm, OpKind.Rope, OpKind.SwiGlu, OpKind.Add, OpKind.Copy, OpKind.Argmax, OpKind.Gather])
            Add(op, DataType.F32);
        return table;
    }

    /// <summary>The variants of <paramref name="op"/> for <paramref name="type"/>; empty when unsupported.</summary>
    public static IReadOnlyList<KernelVariant> Variants(OpKind op, DataType type)
        => Table.TryGetValue((op, type), out var list) ? list : None;

    /// <summary>Answers a capability query without throwing.</summary>
    public static OpSupport Supports(in OpQuery q)
    {
        if (!Enum.IsDefined(q.Op))
            return OpSupport.No($"unknown op {(int)q.Op}");
        if (!Enum.IsDefined(q.Type))
            return OpSupport.No($"unknown type {(int)q.Type}");
        if (q.Op == OpKind.Copy)
            return OpSupport.Yes; // bytes are bytes: any type
        if (!Table.ContainsKey((q.Op, q.Type)))
        {
            return OpSupport.No(q.Op switch
            {
                OpKind.MatMul or OpKind.Embed => $"{q.Op} takes weights of {string.Join(", ", WeightTypes.Select(t => t.Name()))}, not {q.Type.Name()}",
                OpKind.KvWrite or OpKind.Attention => $"{q.Op} needs an f16 or f32 cache, not {q.Type.Name()}",
                _ => $"{q.Op} works on f32, not {q.Type.Name()}",
            });
        }
        if (q.Op is OpKind.MatMul or OpKind.Embed && q.Cols % q.Type.BlockSize() != 0)
            return OpSupport.No($"{q.Op} {q.Type.Name()}: a row of {q.Cols} elements is not whole blocks of {q.Type.BlockSize()}");
        if (q.Rows < 0 || q.Cols < 0 || q.Heads < 0 || q.KvHeads < 0 || q.HeadDim < 0)
            return OpSupport.No($"{q}: negative dimensions");
        if (q.Op == OpKind.Attention && q.Heads > 0 && q.KvHeads > 0 && q.Heads % q.KvHeads != 0)
            return OpSupport.No($"{q}: Heads must be a multiple of KvHeads");
        return OpSupport.Yes;
    }
}
