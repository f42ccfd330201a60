using ILGPU;
using Serving.Abstractions;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>Add: out = a + b, b of a's shape or one row broadcast over a's rows; one thread per element.</summary>
internal static class Add
{
    /// <summary>The kernel; <paramref name="broadcastCols"/> is N when b is one row, 0 otherwise.</summary>
    public static void Kernel(ArrayView<float> a, ArrayView<float> b, ArrayView<float> output, long total, int broadcastCols)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = Grid.GlobalIndex.X; i < total; i += stride)
            output[i] = a[i] + b[broadcastCols > 0 ? i % broadcastCols : i];
    }

    /// <summary>Records Add.</summary>
    public static void Record(CudaStream s, in TensorView a, in TensorView b, in TensorView output)
    {
        long total = (long)a.Rows * a.Cols;
        int broadcast = b.Rows == a.Rows ? 0 : a.Cols;
        s.Kernels.Add(s.Handle, s.Owner.Elements(total), s.F32(a), s.F32(b), s.F32(output), total, broadcast);
    }
}
