namespace Serving.Backends.Cuda.Kernels.Formats;

/// <summary>q4_K, as GGUF stores it (144-byte super-blocks are whole words: d and dmin in word 0, scales in 1..3,
/// nibbles in 4..35). A slot is one word of nibbles: word j = 8i + jj holds elements 64i + 4jj.. (sub-block 2i) in its
/// low nibbles and 64i + 32 + 4jj.. (sub-block 2i + 1) in its high ones.</summary>
internal struct Q4_KFormat : IWeightFormat
{
    /// <summary>Words per super-block.</summary>
    public const int Words = 36;

    /// <inheritdoc/>
    public readonly long Slots(int cols) => cols / 8;

    /// <inheritdoc/>
    public readonly float Value(WeightView w, long row, int e)
    {
        long superBlock = (row * (w.Cols / 256) + e / 256) * Words;
        int r = e % 256, s = r / 32, l = r % 32, byteIndex = 32 * (s / 2) + l;
        uint q = Scalars.Byte(w.Words[superBlock + 4 + byteIndex / 4], byteIndex % 4);
        q = s % 2 == 0 ? q & 15u : q >> 4;
        uint scaleMin = ScaleMinK.Get(w, superBlock, s);
        return ScaleMinK.D(w, superBlock) * (scaleMin & 0xFFu) * q - ScaleMinK.DMin(w, superBlock) * (scaleMin >> 8);
    }

    /// <inheritdoc/>
    public readonly float Dot<TM>(WeightView w, long row, long slot, MatMulInputs x, long t) where TM : struct, IKernelMode
    {
        long sb = slot / 32;
        int j = (int)(slot % 32), i = j / 8, jj = j % 8;
        long superBlock = (row * (w.Cols / 256) + sb) * Words;
        uint q = w.Words[superBlock + 4 + j];
        return KQuant.Pair<TM>(w, superBlock, i, q & 0x0F0F0F0Fu, (q >> 4) & 0x0F0F0F0Fu, x, t, sb, jj);
    }
}

/// <summary>The q4_K / q5_K slot arithmetic once the 4- or 5-bit quants of a word's two sub-blocks are unpacked.</summary>
internal static class KQuant
{
    /// <summary>Σ over the eight elements (four of sub-block 2i, four of 2i + 1) of (d·sc·q − dmin·m) · x, with x in q8 blocks.</summary>
    public static float Pair<TM>(WeightView w, long superBlock, int i, uint lo, uint hi, MatMulInputs x, long t, long sb, int jj)
        where TM : struct, IKernelMode
    {
        long xWord = t * (x.K / 4) + sb * 64 + 16 * i + jj;
        long xBlock = t * (x.K / 32) + sb * 8 + 2 * i;
        int xLo = x.Xq[xWord], xHi = x.Xq[xWord + 8];
        float d = ScaleMinK.D(w, superBlock), dmin = ScaleMinK.DMin(w, superBlock);
        uint smLo = ScaleMinK.Get(w, superBlock, 2 * i), smHi = ScaleMinK.Get(w, superBlock, 2 * i + 1);
        int dotLo = Scalars.Dot4<TM>((int)lo, xLo, 0), sumLo = Scalars.Dot4<TM>(0x01010101, xLo, 0);
        int dotHi = Scalars.Dot4<TM>((int)hi, xHi, 0), sumHi = Scalars.Dot4<TM>(0x01010101, xHi, 0);
        float a = x.Xd[xBlock] * (d * (smLo & 0xFFu) * dotLo - dmin * (smLo >> 8) * sumLo);
        float b = x.Xd[xBlock + 1] * (d * (smHi & 0xFFu) * dotHi - dmin * (smHi >> 8) * sumHi);
        return a + b;
    }
}
