using System.Runtime.CompilerServices;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>y[t, :] = x[t, :] / sqrt(mean(x[t, :]²) + eps) · w. x, y F32 [T, D] (may be the same memory), w F32 [D].</summary>
internal static unsafe class RmsNorm
{
    private struct Job
    {
        public float* X;      // [T, D]
        public float* W;      // [D]
        public float* Y;      // [T, D]
        public int D;
        public float Eps;
    }

    /// <summary>Runs the op on validated pointers.</summary>
    public static void Run(WorkerPool pool, float* x, float* w, float* y, int t, int d, float eps)
    {
        var job = new Job { X = x, W = w, Y = y, D = d, Eps = eps };
        pool.Run(&Row, &job, t, (long)t * d);
    }

    private static void Row(void* context, int t, int worker)
    {
        var job = (Job*)context;
        int d = job->D;
        float* x = job->X + (long)t * d;
        float* y = job->Y + (long)t * d;
        float sum = VectorDriver.Reduce(new SumOfSquares(x), d);
        float scale = (float)(1.0 / Math.Sqrt(sum / d + (double)job->Eps));
        VectorDriver.Map<ScaledByWeight>(x, job->W, y, d, scale);
    }

    /// <summary>Σ x[i]², one accumulator.</summary>
    private readonly struct SumOfSquares(float* x) : IReduceOperator
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Accumulate<TW, TV>(ref TV acc, nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
        {
            TV v = TW.Load(x + i);
            acc = TW.MultiplyAdd(v, v, acc);
        }
    }

    /// <summary>x · scale · w, multiplied in that order.</summary>
    private readonly struct ScaledByWeight : IMapOperator
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Invoke<TW, TV>(TV x, TV w, TV scale) where TW : struct, IFloatVector<TV> where TV : unmanaged
            => TW.Multiply(TW.Multiply(x, scale), w);
    }
}
