using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>Gather: out[r, :] = src[rows[r], :], bytes as they are.</summary>
internal static class Gather
{
    public static void Run(in TensorView source, in TensorView rows, in TensorView output)
    {
        int[] index = Views.ReadInts(rows);
        foreach (int r in index) Views.CheckIndex(nameof(Gather), "row", r, source.Rows); // before writing
        for (int r = 0; r < index.Length; r++)
            Views.RowBytes(source, index[r]).CopyTo(Views.RowBytes(output, r));
    }
}
