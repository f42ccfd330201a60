using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>SwiGlu: out = gate / (1 + e^(−gate)) · up, element-wise in f64.</summary>
internal static class SwiGlu
{
    public static void Run(in TensorView gate, in TensorView up, in TensorView output)
    {
        for (int t = 0; t < gate.Rows; t++)
        {
            float[] g = Views.ReadRow(gate, t), u = Views.ReadRow(up, t); // both read first: output may be either
            var o = new float[g.Length];
            for (int i = 0; i < g.Length; i++) o[i] = (float)(g[i] / (1 + Math.Exp(-(double)g[i])) * u[i]);
            Views.WriteRow(output, t, o);
        }
    }
}
