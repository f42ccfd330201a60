namespace Serving.Backends.Cuda.Kernels.Formats;

/// <summary>q6_K, repacked: per super-block ql (32 words), qh (16 words) and the int8 scales (4 words) in the body,
/// the f16 d in the scale plane. A slot is one ql word: half h, pair p and word jj (l = 4jj..4jj + 3) give elements
/// 128h + 32p + l from its low nibbles and 128h + 32(p + 2) + l from its high ones, top bits from qh word 8h + jj.</summary>
internal struct Q6_KFormat : IWeightFormat
{
    /// <summary>Body words per super-block.</summary>
    public const int Words = 52;

    /// <inheritdoc/>
    public readonly long Slots(int cols) => cols / 8;

    /// <inheritdoc/>
    public readonly float Value(WeightView w, long row, int e)
    {
        long index = row * (w.Cols / 256) + e / 256;
        long body = index * Words;
        int r = e % 256, h = r / 128, g = (r % 128) / 32, l = r % 32;
        int qlByte = 64 * h + l + 32 * (g % 2), qhByte = 128 + 32 * h + l, scaleByte = 192 + r / 16;
        uint ql = Scalars.Byte(w.Words[body + qlByte / 4], qlByte % 4);
        ql = g < 2 ? ql & 15u : ql >> 4;
        uint qh = (Scalars.Byte(w.Words[body + qhByte / 4], qhByte % 4) >> (2 * g)) & 3u;
        int sc = Scalars.SByte(w.Words[body + scaleByte / 4], scaleByte % 4);
        return Scalars.HalfToFloat(w.Halves[w.ScaleOffset + index]) * sc * ((int)(ql | (qh << 4)) - 32);
    }

    /// <inheritdoc/>
    public readonly float Dot<TM>(WeightView w, long row, long slot, MatMulInputs x, long t) where TM : struct, IKernelMode
    {
        long sb = slot / 32;
        int j = (int)(slot % 32), h = j / 16, p = (j % 16) / 8, jj = j % 8;
        long index = row * (w.Cols / 256) + sb;
        long body = index * Words;
        uint ql = w.Words[body + 16 * h + 8 * p + jj];
        uint qh = w.Words[body + 32 + 8 * h + jj];
        uint qa = (ql & 0x0F0F0F0Fu) | (((qh >> (2 * p)) & 0x03030303u) << 4);
        uint qb = ((ql >> 4) & 0x0F0F0F0Fu) | (((qh >> (2 * (p + 2))) & 0x03030303u) << 4);
        // Groups g = p and p + 2 of half h: elements 128h + 32g + 4jj.., x word sb·64 + 32h + 8g + jj, x block sb·8 + 4h + g,
        // scale (128h + 32g + 4jj) / 16 = 8h + 2g + jj / 4.
        long xWord = t * (x.K / 4) + sb * 64 + 32 * h + jj;
        long xBlock = t * (x.K / 32) + sb * 8 + 4 * h;
        int ga = p, gb = p + 2;
        int dotA = Scalars.Dot4<TM>(Scalars.Center(qa, 32), x.Xq[xWord + 8 * ga], 0);
        int dotB = Scalars.Dot4<TM>(Scalars.Center(qb, 32), x.Xq[xWord + 8 * gb], 0);
        int scA = 8 * h + 2 * ga + jj / 4, scB = 8 * h + 2 * gb + jj / 4;
        float sa = Scalars.SByte(w.Words[body + 48 + scA / 4], scA % 4);
        float sbScale = Scalars.SByte(w.Words[body + 48 + scB / 4], scB % 4);
        float d = Scalars.HalfToFloat(w.Halves[w.ScaleOffset + index]);
        return d * (sa * x.Xd[xBlock + ga] * dotA + sbScale * x.Xd[xBlock + gb] * dotB);
    }
}
