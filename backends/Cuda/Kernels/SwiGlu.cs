using ILGPU;
using Serving.Abstractions;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>SwiGlu: out = gate / (1 + e^(−gate)) · up, one thread per element (in place on either input is safe: each
/// element is read before it is written, by the same thread).</summary>
internal static class SwiGlu
{
    /// <summary>The kernel.</summary>
    public static void Kernel(ArrayView<float> gate, ArrayView<float> up, ArrayView<float> output, long total)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = Grid.GlobalIndex.X; i < total; i += stride)
        {
            float g = gate[i];
            output[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    /// <summary>Records SwiGlu.</summary>
    public static void Record(CudaStream s, in TensorView gate, in TensorView up, in TensorView output)
    {
        long total = (long)gate.Rows * gate.Cols;
        s.Kernels.SwiGlu(s.Handle, s.Owner.Elements(total), s.F32(gate), s.F32(up), s.F32(output), total);
    }
}
