using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>Add: out[t, n] = a[t, n] + b[t, n], or + b[0, n] when b has one row.</summary>
internal static class Add
{
    public static void Run(in TensorView a, in TensorView b, in TensorView output)
    {
        bool broadcast = b.Rows != a.Rows;
        for (int t = 0; t < a.Rows; t++)
        {
            float[] x = Views.ReadRow(a, t), y = Views.ReadRow(b, broadcast ? 0 : t);
            for (int i = 0; i < x.Length; i++) x[i] += y[i];
            Views.WriteRow(output, t, x);
        }
    }
}
