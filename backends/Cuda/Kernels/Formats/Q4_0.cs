namespace Serving.Backends.Cuda.Kernels.Formats;

/// <summary>q4_0, repacked: per block the 16 bytes of nibbles (4 words) in the body, the f16 d in the scale plane.
/// A slot is one word: its low nibbles are elements 4j..4j+3, its high nibbles 16+4j..16+4j+3.</summary>
internal struct Q4_0Format : IWeightFormat
{
    /// <inheritdoc/>
    public readonly long Slots(int cols) => cols / 8;

    /// <inheritdoc/>
    public readonly float Value(WeightView w, long row, int e)
    {
        long blocks = w.Cols / 32, b = e / 32;
        int j = e % 32, byteIndex = j % 16;
        uint q = Scalars.Byte(w.Words[(row * blocks + b) * 4 + byteIndex / 4], byteIndex % 4);
        q = j < 16 ? q & 15u : q >> 4;
        return ((int)q - 8) * Scalars.HalfToFloat(w.Halves[w.ScaleOffset + row * blocks + b]);
    }

    /// <inheritdoc/>
    public readonly float Dot<TM>(WeightView w, long row, long slot, MatMulInputs x, long t) where TM : struct, IKernelMode
    {
        long blocks = w.Cols / 32, b = slot / 4;
        long j = slot % 4;
        uint q = w.Words[row * blocks * 4 + slot];
        long xBase = t * (x.K / 4) + b * 8 + j;
        int sum = Scalars.Dot4<TM>(Scalars.Center(q & 0x0F0F0F0Fu, 8), x.Xq[xBase], 0);
        sum = Scalars.Dot4<TM>(Scalars.Center((q >> 4) & 0x0F0F0F0Fu, 8), x.Xq[xBase + 4], sum);
        return Scalars.HalfToFloat(w.Halves[w.ScaleOffset + row * blocks + b]) * x.Xd[t * blocks + b] * sum;
    }
}
