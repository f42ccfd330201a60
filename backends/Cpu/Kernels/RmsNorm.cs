using System.Runtime.Intrinsics;
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
        float* w = job->W;
        float sum = SumOfSquares(x, d);
        float scale = (float)(1.0 / Math.Sqrt(sum / d + (double)job->Eps));
        int i = 0;
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> s = Vector512.Create(scale);
            for (; i <= d - 16; i += 16)
                (Vector512.Load(x + i) * s * Vector512.Load(w + i)).Store(y + i);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> s = Vector256.Create(scale);
            for (; i <= d - 8; i += 8)
                (Vector256.Load(x + i) * s * Vector256.Load(w + i)).Store(y + i);
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> s = Vector128.Create(scale);
            for (; i <= d - 4; i += 4)
                (Vector128.Load(x + i) * s * Vector128.Load(w + i)).Store(y + i);
        }
        for (; i < d; i++)
            y[i] = x[i] * scale * w[i];
    }

    private static float SumOfSquares(float* x, int d)
    {
        int i = 0;
        float sum = 0f;
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> acc = Vector512<float>.Zero;
            for (; i <= d - 16; i += 16)
            {
                Vector512<float> v = Vector512.Load(x + i);
                acc = Vector512.MultiplyAddEstimate(v, v, acc);
            }
            sum = Vector512.Sum(acc);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> acc = Vector256<float>.Zero;
            for (; i <= d - 8; i += 8)
            {
                Vector256<float> v = Vector256.Load(x + i);
                acc = Vector256.MultiplyAddEstimate(v, v, acc);
            }
            sum = Vector256.Sum(acc);
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> acc = Vector128<float>.Zero;
            for (; i <= d - 4; i += 4)
            {
                Vector128<float> v = Vector128.Load(x + i);
                acc = Vector128.MultiplyAddEstimate(v, v, acc);
            }
            sum = Vector128.Sum(acc);
        }
        for (; i < d; i++)
            sum += x[i] * x[i];
        return sum;
    }
}
