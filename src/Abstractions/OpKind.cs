namespace Serving.Abstractions;

/// <summary>The ops of op set v2 (docs/contract.md). Activations are f32.</summary>
public enum OpKind
{
    /// <summary>Rows of a prepared table [V, D] (any weight type) for token ids [T] → f32 [T, D].</summary>
    Embed,
    /// <summary>y = x / sqrt(mean(x²) + eps) · w, per row.</summary>
    RmsNorm,
    /// <summary>y[T, N] = x[T, K] · W[N, K]ᵀ, W a prepared weight of any weight type.</summary>
    MatMul,
    /// <summary>Rotary position embedding, in place, normal or NeoX pairing.</summary>
    Rope,
    /// <summary>Write k/v rows into the backend's paged KV cache at given slots.</summary>
    KvWrite,
    /// <summary>Causal GQA attention of many sequences' queries over their KV pages.</summary>
    Attention,
    /// <summary>silu(gate) · up.</summary>
    SwiGlu,
    /// <summary>Element-wise a + b, b of the same shape or one row broadcast over a's rows.</summary>
    Add,
    /// <summary>Plain copy of bytes; the tuner's bandwidth probe.</summary>
    Copy,
    /// <summary>Index of the largest value per row, so a greedy step downloads T ints, not T × V floats.</summary>
    Argmax,
    /// <summary>Selected f32 rows of a matrix (the rows that want logits), one launch for all of them.</summary>
    Gather,
}

/// <summary>
/// What <see cref="IAccelerator.Supports"/> is asked: an op, the type it works on, and the shape it will see. The
/// engine asks once per (op, type, shape) a model needs when the model loads, so a device that cannot run the model
/// refuses it then, naming op, type and shape, never at the first step.
/// Per op: MatMul/Embed: Type = the weight type, Rows × Cols = the weight's N × K (V × D). KvWrite/Attention: Type =
/// the cache type, Heads/KvHeads/HeadDim set, Rows = the largest context (positions) a sequence reaches. Element-wise
/// ops, RmsNorm, Rope, Argmax, Gather: Type = F32 (Argmax/Gather: of the input), Cols = the row width. Copy: any type.
/// </summary>
/// <param name="Op">The op.</param>
/// <param name="Type">The type it works on (see above).</param>
/// <param name="Rows">See above; 0 when it does not matter.</param>
/// <param name="Cols">See above; 0 when it does not matter.</param>
/// <param name="Heads">Query heads (attention), else 0.</param>
/// <param name="KvHeads">KV heads (attention, KvWrite), else 0.</param>
/// <param name="HeadDim">Head dim (attention, KvWrite, Rope), else 0.</param>
public readonly record struct OpQuery(OpKind Op, DataType Type, int Rows = 0, int Cols = 0, int Heads = 0, int KvHeads = 0, int HeadDim = 0)
{
    /// <inheritdoc/>
    public override string ToString()
    {
        string shape = Op switch
        {
            OpKind.MatMul or OpKind.Embed => $"[{Rows}, {Cols}]",
            OpKind.KvWrite or OpKind.Attention => $"H {Heads}, Hkv {KvHeads}, Dh {HeadDim}, context {Rows}",
            _ => Cols > 0 ? $"width {Cols}" : "",
        };
        return shape.Length == 0 ? $"{Op} {Type.Name()}" : $"{Op} {Type.Name()} {shape}";
    }
}

/// <summary>Which calls of an op a <see cref="KernelVariant"/> applies to; a variant is only run on shapes it matches.</summary>
/// <param name="MinRows">Smallest T (rows of the activation input).</param>
/// <param name="MaxRows">Largest T.</param>
/// <param name="ColsMultiple">K (MatMul), D (Embed, RmsNorm) or Dh (Attention) must be a multiple of this.</param>
public readonly record struct VariantShapes(int MinRows = 0, int MaxRows = int.MaxValue, int ColsMultiple = 1)
{
    /// <summary>Every shape.</summary>
    public static VariantShapes Any => new(0, int.MaxValue, 1);

    /// <summary>True when a call with <paramref name="rows"/> rows and <paramref name="cols"/> columns may use the variant.</summary>
    public bool Matches(int rows, int cols) => rows >= MinRows && rows <= MaxRows && ColsMultiple > 0 && cols % ColsMultiple == 0;

    /// <inheritdoc/>
    public override string ToString()
    {
        string rows = MaxRows == int.MaxValue ? $"T ≥ {MinRows}" : $"{MinRows} ≤ T ≤ {MaxRows}";
        return ColsMultiple > 1 ? $"{rows}, cols % {ColsMultiple} = 0" : rows;
    }
}

/// <summary>
/// One implementation choice of an op (tile size, threads per row, workgroup size, split-K). Named
/// <c>&lt;op&gt;_&lt;types&gt;_&lt;what-changed&gt;</c>; every variant computes the op's function within its tolerance.
/// The tuner times them and passes the winner back to the op. A batch-invariant variant (the default, and the only
/// kind a reproducible stream runs) gives every row a result that does not depend on the other rows in the call; the
/// conformance suite checks each variant against what it declares.
/// </summary>
/// <param name="Name">Unique name within the backend, e.g. "matmul_q8_0_rows4".</param>
/// <param name="Op">The op it implements.</param>
/// <param name="WeightType">Type it handles: the weight type (MatMul, Embed), the cache type (KvWrite, Attention), F32 otherwise.</param>
/// <param name="Description">One line on what changed against the default.</param>
public sealed record KernelVariant(string Name, OpKind Op, DataType WeightType, string Description)
{
    /// <summary>Shapes the variant may run on (default: all).</summary>
    public VariantShapes AppliesTo { get; init; } = VariantShapes.Any;

    /// <summary>True (the default) when a row's result does not depend on the other rows of the call.</summary>
    public bool BatchInvariant { get; init; } = true;
}

/// <summary>Whether a device runs an op for a type and shape, and if not, why.</summary>
/// <param name="Supported">True when the op runs.</param>
/// <param name="Reason">Why not (empty when supported).</param>
public readonly record struct OpSupport(bool Supported, string Reason)
{
    /// <summary>Supported.</summary>
    public static OpSupport Yes => new(true, "");

    /// <summary>Not supported, with the reason.</summary>
    public static OpSupport No(string reason) => new(false, reason);
}

/// <summary>A point in a stream's op sequence whose device time can be read after the stream synchronizes
/// (<see cref="IComputeStream.RecordTimestamp"/>, <see cref="IComputeStream.Elapsed"/>).</summary>
/// <param name="Stream">The stream that recorded it.</param>
/// <param name="Index">The stream's own index for it.</param>
public readonly record struct DeviceTimestamp(IComputeStream Stream, int Index);
