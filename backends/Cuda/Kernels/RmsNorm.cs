using ILGPU;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>RmsNorm: y[t, :] = x[t, :] · (1 / sqrt(Σx²/D + eps)) · w; one warp (or serial thread) per row, the sum of
/// squares reduced across the lanes (each lane's elements d = lane, lane + 32, …). In place is safe: a lane writes only
/// the elements it read, after the reduction.</summary>
internal static class RmsNorm
{
    private struct SumOfSquares : ILaneSum
    {
        public ArrayView<float> X;
        public int D;

        public readonly float Partial(int unit, int lane)
        {
            float s = 0f;
            long row = (long)unit * D;
            for (int d = lane; d < D; d += Lanes.Count)
            {
                float v = X[row + d];
                s += v * v;
            }
            return s;
        }
    }

    /// <summary>The kernel.</summary>
    public static void Kernel<TM>(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, int rows, int d, float eps)
        where TM : struct, IKernelMode
    {
        int unit = Lanes.Unit<TM>();
        if (unit >= rows) return;
        int lane = Lanes.Lane<TM>();
        float sum = Lanes.SumAll<TM, SumOfSquares>(new SumOfSquares { X = x, D = d }, unit, lane);
        float scale = 1f / MathF.Sqrt(sum / d + eps);
        long row = (long)unit * d;
        int step = default(TM).Serial ? 1 : Lanes.Count;
        for (int i = lane; i < d; i += step)
            y[row + i] = x[row + i] * scale * w[i];
    }

    /// <summary>Records RmsNorm.</summary>
    public static void Record(CudaStream s, in Serving.Abstractions.TensorView x, in Serving.Abstractions.TensorView w, in Serving.Abstractions.TensorView y, float eps, int warpsPerGroup)
        => s.Kernels.RmsNorm(s.Handle, s.Owner.Units(x.Rows, warpsPerGroup), s.F32(x), s.F32(w), s.F32(y), x.Rows, x.Cols, eps);
}
