using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>MatMul: y[t, n] = Σₖ x[t, k] · W[n, k], each weight row decoded to f32, dots in f64.</summary>
internal static class MatMul
{
    public static void Run(in TensorView x, ScalarWeight weight, in TensorView y)
    {
        int t = x.Rows, n = weight.Rows, k = weight.Cols;
        var xs = new float[t][];
        for (int r = 0; r < t; r++) xs[r] = Views.ReadRow(x, r);
        var ys = new float[t][];
        for (int r = 0; r < t; r++) ys[r] = new float[n];
        var w = new float[k];
        for (int j = 0; j < n; j++)
        {
            Dequantize.Row(weight.Type, weight.Row(j), w);
            for (int r = 0; r < t; r++)
            {
                double acc = 0;
                for (int i = 0; i < k; i++) acc += (double)xs[r][i] * w[i];
                ys[r][j] = (float)acc;
            }
        }
        for (int r = 0; r < t; r++) Views.WriteRow(y, r, ys[r]);
    }
}
