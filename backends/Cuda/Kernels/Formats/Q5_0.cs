namespace Serving.Backends.Cuda.Kernels.Formats;

/// <summary>q5_0, repacked: per block the u32 of fifth bits then the 16 bytes of nibbles (5 words) in the body, the
/// f16 d in the scale plane. A slot is one word of nibbles, as q4_0, with bit j of qh as bit 4 of element j.</summary>
internal struct Q5_0Format : IWeightFormat
{
    /// <inheritdoc/>
    public readonly long Slots(int cols) => cols / 8;

    /// <inheritdoc/>
    public readonly float Value(WeightView w, long row, int e)
    {
        long blocks = w.Cols / 32, b = e / 32;
        int j = e % 32, byteIndex = j % 16;
        long body = (row * blocks + b) * 5;
        uint q = Scalars.Byte(w.Words[body + 1 + byteIndex / 4], byteIndex % 4);
        q = (j < 16 ? q & 15u : q >> 4) | (((w.Words[body] >> j) & 1u) << 4);
        return ((int)q - 16) * Scalars.HalfToFloat(w.Halves[w.ScaleOffset + row * blocks + b]);
    }

    /// <inheritdoc/>
    public readonly float Dot<TM>(WeightView w, long row, long slot, MatMulInputs x, long t) where TM : struct, IKernelMode
    {
        long blocks = w.Cols / 32, b = slot / 4;
        int j = (int)(slot % 4);
        long body = (row * blocks + b) * 5;
        uint qh = w.Words[body];
        uint q = w.Words[body + 1 + j];
        uint lo = (q & 0x0F0F0F0Fu) | (Scalars.SpreadNibble((qh >> (4 * j)) & 15u) << 4);
        uint hi = ((q >> 4) & 0x0F0F0F0Fu) | (Scalars.SpreadNibble((qh >> (16 + 4 * j)) & 15u) << 4);
        long xBase = t * (x.K / 4) + b * 8 + j;
        int sum = Scalars.Dot4<TM>(Scalars.Center(lo, 16), x.Xq[xBase], 0);
        sum = Scalars.Dot4<TM>(Scalars.Center(hi, 16), x.Xq[xBase + 4], sum);
        return Scalars.HalfToFloat(w.Halves[w.ScaleOffset + row * blocks + b]) * x.Xd[t * blocks + b] * sum;
    }
}
