namespace Serving.Abstractions;

/// <summary>The ops of op set v1 (docs/contract.md). Activations are f32.</summary>
public enum OpKind
{
    /// <summary>Rows of a table [V, D] (any weight type) for token ids [T] → f32 [T, D].</summary>
    Embed,
    /// <summary>y = x / sqrt(mean(x²) + eps) · w, per row.</summary>
    RmsNorm,
    /// <summary>y[T, N] = x[T, K] · W[N, K]ᵀ, W of any weight type.</summary>
    MatMul,
    /// <summary>Rotary position embedding, in place, normal or NeoX pairing.</summary>
    Rope,
    /// <summary>Write k/v rows into the paged KV cache at given slots.</summary>
    KvWrite,
    /// <summary>Causal GQA attention of many sequences' queries over their KV pages.</summary>
    Attention,
    /// <summary>silu(gate) · up.</summary>
    SwiGlu,
    /// <summary>Element-wise a + b.</summary>
    Add,
    /// <summary>Plain copy of bytes; the tuner's bandwidth probe.</summary>
    Copy,
    /// <summary>Index of the largest value per row (optional).</summary>
    Argmax,
}

/// <summary>
/// One implementation choice of an op (tile size, threads per row, vector width). Named
/// <c>&lt;op&gt;_&lt;types&gt;_&lt;what-changed&gt;</c>; every variant computes the same function within the op's
/// tolerance. The tuner times them and passes the winner back to the op.
/// </summary>
/// <param name="Name">Unique name within the backend, e.g. "matmul_q8_0_rows4".</param>
/// <param name="Op">The op it implements.</param>
/// <param name="WeightType">Weight type it handles (F32 for ops without weights).</param>
/// <param name="Description">One line on what changed against the default.</param>
public sealed record KernelVariant(string Name, OpKind Op, DataType WeightType, string Description);

/// <summary>Whether a device runs an op for a type, and if not, why.</summary>
/// <param name="Supported">True when the op runs.</param>
/// <param name="Reason">Why not (empty when supported).</param>
public readonly record struct OpSupport(bool Supported, string Reason)
{
    /// <summary>Supported.</summary>
    public static OpSupport Yes => new(true, "");

    /// <summary>Not supported, with the reason.</summary>
    public static OpSupport No(string reason) => new(false, reason);
}
