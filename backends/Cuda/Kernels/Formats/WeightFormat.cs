using ILGPU;

namespace Serving.Backends.Cuda.Kernels.Formats;

/// <summary>
/// A prepared weight as the kernels see it: one device buffer read as 32-bit words (the quantized blocks' bodies,
/// word-aligned; or f32 elements) and as halves (f16/bf16 elements; the f16 block scales, which start at
/// <see cref="ScaleOffset"/> halves). The layout per type is in <see cref="WeightLayout"/>.
/// </summary>
internal struct WeightView
{
    /// <summary>The buffer as words.</summary>
    public ArrayView<uint> Words;

    /// <summary>The same buffer as halves.</summary>
    public ArrayView<ushort> Halves;

    /// <summary>Where the f16 scale plane starts, in halves (0 when the type keeps its scales in the body).</summary>
    public long ScaleOffset;

    /// <summary>Elements per row (K or D).</summary>
    public int Cols;
}

/// <summary>The activations a MatMul reads: f32 rows, and for quantized weights the same rows as q8 blocks of 32
/// (<see cref="QuantizeActivations"/>: int8 quants as words, one f32 scale per block).</summary>
internal struct MatMulInputs
{
    /// <summary>x [T, K] f32.</summary>
    public ArrayView<float> X;

    /// <summary>x as int8 [T, K], four per word.</summary>
    public ArrayView<int> Xq;

    /// <summary>The scale of each 32-element block of x [T, K/32].</summary>
    public ArrayView<float> Xd;

    /// <summary>K.</summary>
    public int K;
}

/// <summary>
/// One weight type's arithmetic: its dequantized elements (Embed) and its dot products (MatMul). A MatMul row is cut
/// into slots, each one lane's unit of work per step (a word of quants, or one element for float types); lane l takes
/// slots l, l + 32, … so a warp reads consecutive words.
/// </summary>
internal interface IWeightFormat
{
    /// <summary>Slots per row of <paramref name="cols"/> elements.</summary>
    long Slots(int cols);

    /// <summary>Element <paramref name="e"/> of row <paramref name="row"/>, dequantized as docs/backends.md §5 writes it.</summary>
    float Value(WeightView w, long row, int e);

    /// <summary>Slot <paramref name="slot"/> of row <paramref name="row"/> times activation row <paramref name="t"/>.</summary>
    float Dot<TM>(WeightView w, long row, long slot, MatMulInputs x, long t) where TM : struct, IKernelMode;
}
