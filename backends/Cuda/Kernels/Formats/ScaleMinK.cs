namespace Serving.Backends.Cuda.Kernels.Formats;

/// <summary>The 6-bit scales and mins of q4_K and q5_K (12 bytes in words 1..3 of a super-block's body; docs/backends.md §5).</summary>
internal static class ScaleMinK
{
    /// <summary>Sub-block <paramref name="s"/>'s scale in bits 0..7 and min in bits 8..15.</summary>
    public static uint Get(WeightView w, long superBlock, int s)
    {
        uint sc, m;
        if (s < 4)
        {
            sc = ScaleByte(w, superBlock, s) & 63u;
            m = ScaleByte(w, superBlock, s + 4) & 63u;
        }
        else
        {
            uint b = ScaleByte(w, superBlock, s + 4);
            sc = (b & 15u) | ((ScaleByte(w, superBlock, s - 4) >> 6) << 4);
            m = (b >> 4) | ((ScaleByte(w, superBlock, s) >> 6) << 4);
        }
        return sc | (m << 8);
    }

    /// <summary>d (word 0, low half) of the super-block starting at word <paramref name="superBlock"/>.</summary>
    public static float D(WeightView w, long superBlock) => Scalars.HalfToFloat(w.Words[superBlock] & 0xFFFFu);

    /// <summary>dmin (word 0, high half).</summary>
    public static float DMin(WeightView w, long superBlock) => Scalars.HalfToFloat(w.Words[superBlock] >> 16);

    private static uint ScaleByte(WeightView w, long superBlock, int i) => Scalars.Byte(w.Words[superBlock + 1 + i / 4], i % 4);
}
