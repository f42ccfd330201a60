using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>Argmax: the first index of the largest value per row; NaN never wins; a row of only NaN gives 0.</summary>
internal static class Argmax
{
    public static void Run(in TensorView logits, in TensorView output)
    {
        var result = new int[logits.Rows];
        for (int t = 0; t < logits.Rows; t++)
        {
            float[] row = Views.ReadRow(logits, t);
            int best = -1;
            for (int i = 0; i < row.Length; i++)
            {
                if (float.IsNaN(row[i])) continue;
                if (best < 0 || row[i] > row[best]) best = i;
            }
            result[t] = Math.Max(best, 0);
        }
        Views.WriteInts(output, result);
    }
}
