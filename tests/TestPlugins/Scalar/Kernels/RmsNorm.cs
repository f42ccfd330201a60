using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>RmsNorm: y[t, :] = x[t, :] / sqrt(mean(x[t, :]²) + eps) · w (sum of squares in f64).</summary>
internal static class RmsNorm
{
    public static void Run(in TensorView x, in TensorView weight, in TensorView y, float eps)
    {
        float[] w = Views.ReadRow(weight, 0);
        for (int t = 0; t < x.Rows; t++)
        {
            float[] row = Views.ReadRow(x, t); // read before writing: y may be x
            double sum = 0;
            foreach (float v in row) sum += (double)v * v;
            double scale = 1.0 / Math.Sqrt(sum / row.Length + eps);
            for (int i = 0; i < row.Length; i++) row[i] = (float)(row[i] * scale * w[i]);
            Views.WriteRow(y, t, row);
        }
    }
}
