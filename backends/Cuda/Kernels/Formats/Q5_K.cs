namespace Serving.Backends.Cuda.Kernels.Formats;

/// <summary>q5_K, as GGUF stores it (176-byte super-blocks are whole words: d/dmin word 0, scales 1..3, fifth bits qh
/// 4..11, nibbles 12..43). A slot is q4_K's word of nibbles with bits 2i and 2i + 1 of the matching qh bytes on top.</summary>
internal struct Q5_KFormat : IWeightFormat
{
    /// <summary>Words per super-block.</summary>
    public const int Words = 44;

    /// <inheritdoc/>
    public readonly long Slots(int cols) => cols / 8;

    /// <inheritdoc/>
    public readonly float Value(WeightView w, long row, int e)
    {
        long superBlock = (row * (w.Cols / 256) + e / 256) * Words;
        int r = e % 256, s = r / 32, l = r % 32, byteIndex = 32 * (s / 2) + l;
        uint q = Scalars.Byte(w.Words[superBlock + 12 + byteIndex / 4], byteIndex % 4);
        q = s % 2 == 0 ? q & 15u : q >> 4;
        q |= ((Scalars.Byte(w.Words[superBlock + 4 + l / 4], l % 4) >> s) & 1u) << 4;
        uint scaleMin = ScaleMinK.Get(w, superBlock, s);
        return ScaleMinK.D(w, superBlock) * (scaleMin & 0xFFu) * q - ScaleMinK.DMin(w, superBlock) * (scaleMin >> 8);
    }

    /// <inheritdoc/>
    public readonly float Dot<TM>(WeightView w, long row, long slot, MatMulInputs x, long t) where TM : struct, IKernelMode
    {
        long sb = slot / 32;
        int j = (int)(slot % 32), i = j / 8, jj = j % 8;
        long superBlock = (row * (w.Cols / 256) + sb) * Words;
        uint q = w.Words[superBlock + 12 + j];
        uint qh = w.Words[superBlock + 4 + jj];
        uint lo = (q & 0x0F0F0F0Fu) | (((qh >> (2 * i)) & 0x01010101u) << 4);
        uint hi = ((q >> 4) & 0x0F0F0F0Fu) | (((qh >> (2 * i + 1)) & 0x01010101u) << 4);
        return KQuant.Pair<TM>(w, superBlock, i, lo, hi, x, t, sb, jj);
    }
}
