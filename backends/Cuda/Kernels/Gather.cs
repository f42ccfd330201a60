using ILGPU;
using Serving.Abstractions;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>Gather: out[r, :] = source[rows[r], :], exactly; one thread per output element. A row index outside the
/// source writes nothing for that row.</summary>
internal static class Gather
{
    /// <summary>The kernel.</summary>
    public static void Kernel(ArrayView<float> source, ArrayView<int> rows, ArrayView<float> output, int sourceRows, int cols, long total)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = Grid.GlobalIndex.X; i < total; i += stride)
        {
            long r = i / cols;
            int row = rows[r];
            if ((uint)row >= (uint)sourceRows) continue;
            output[i] = source[(long)row * cols + i % cols];
        }
    }

    /// <summary>Records Gather.</summary>
    public static void Record(CudaStream s, in TensorView source, in TensorView rows, in TensorView output)
    {
        long total = (long)output.Rows * output.Cols;
        s.Kernels.Gather(s.Handle, s.Owner.Elements(total), s.F32(source), s.I32(rows), s.F32(output), source.Rows, source.Cols, total);
    }
}
