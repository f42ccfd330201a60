namespace Serving.Backends.Cuda.Kernels.Formats;

/// <summary>q8_0, repacked: per block the 32 int8 quants (8 words) in the body, the f16 d in the scale plane.
/// A slot is one word: four weights times four quantized activations, scaled by d · the activation block's scale.</summary>
internal struct Q8_0Format : IWeightFormat
{
    /// <inheritdoc/>
    public readonly long Slots(int cols) => cols / 4;

    /// <inheritdoc/>
    public readonly float Value(WeightView w, long row, int e)
    {
        long blocks = w.Cols / 32, b = e / 32;
        int j = e % 32;
        uint word = w.Words[(row * blocks + b) * 8 + j / 4];
        return Scalars.SByte(word, j % 4) * Scalars.HalfToFloat(w.Halves[w.ScaleOffset + row * blocks + b]);
    }

    /// <inheritdoc/>
    public readonly float Dot<TM>(WeightView w, long row, long slot, MatMulInputs x, long t) where TM : struct, IKernelMode
    {
        long blocks = w.Cols / 32, b = slot / 8;
        int q = (int)w.Words[row * blocks * 8 + slot];
        int sum = Scalars.Dot4<TM>(q, x.Xq[t * (x.K / 4) + slot], 0);
        return Scalars.HalfToFloat(w.Halves[w.ScaleOffset + row * blocks + b]) * x.Xd[t * blocks + b] * sum;
    }
}
