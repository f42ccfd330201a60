using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>Rope, in place: each head's pairs i &lt; RotaryDim/2 (Normal: 2i, 2i+1; NeoX: i, i + RotaryDim/2) rotated by
/// angle = pos · invFreq[i], the angle formed in f32, the rotation in f64.</summary>
internal static class Rope
{
    public static void Run(in TensorView x, in TensorView positions, in RopeConfig config)
    {
        int[] pos = Views.ReadInts(positions);
        float[] inv = Views.ReadRow(config.InverseFrequencies, 0);
        int half = config.RotaryDim / 2;
        for (int t = 0; t < x.Rows; t++)
        {
            float[] row = Views.ReadRow(x, t);
            for (int h = 0; h < config.Heads; h++)
            {
                int head = h * config.HeadDim;
                for (int i = 0; i < half; i++)
                {
                    float angle = pos[t] * inv[i];
                    double c = Math.Cos(angle), s = Math.Sin(angle);
                    int ia = config.Style == RopeStyle.Normal ? head + 2 * i : head + i;
                    int ib = config.Style == RopeStyle.Normal ? head + 2 * i + 1 : head + i + half;
                    double a = row[ia], b = row[ib];
                    row[ia] = (float)(a * c - b * s);
                    row[ib] = (float)(a * s + b * c);
                }
            }
            Views.WriteRow(x, t, row);
        }
    }
}
