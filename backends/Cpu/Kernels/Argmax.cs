using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// output[t] = the first index of the largest value of logits[t, :] (F32 [T, V] → I32 [T]). NaN never compares
/// greater, so NaNs are skipped; a row of only NaN gives 0. Pass 1 finds the max with vectors, pass 2 the first
/// index holding it.
/// </summary>
internal static unsafe class Argmax
{
    private struct Job
    {
        public float* Logits;   // [T, V]
        public int* Output;     // [T]
        public int V;
    }

    /// <summary>Runs the op on validated pointers.</summary>
    public static void Run(WorkerPool pool, float* logits, int* output, int t, int v)
    {
        var job = new Job { Logits = logits, Output = output, V = v };
        pool.Run(&Row, &job, t, (long)t * v);
    }

    private static void Row(void* context, int t, int worker)
    {
        var job = (Job*)context;
        int v = job->V;
        float* x = job->Logits + (long)t * v;
        float max = float.NegativeInfinity;
        int i = 0;
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> m = Vector512.Create(float.NegativeInfinity);
            for (; i <= v - 16; i += 16)
            {
                Vector512<float> e = Vector512.Load(x + i);
                m = Vector512.ConditionalSelect(Vector512.GreaterThan(e, m), e, m);
            }
            for (int j = 0; j < 16; j++)
                max = m[j] > max ? m[j] : max;
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> m = Vector256.Create(float.NegativeInfinity);
            for (; i <= v - 8; i += 8)
            {
                Vector256<float> e = Vector256.Load(x + i);
                m = Vector256.ConditionalSelect(Vector256.GreaterThan(e, m), e, m);
            }
            for (int j = 0; j < 8; j++)
                max = m[j] > max ? m[j] : max;
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> m = Vector128.Create(float.NegativeInfinity);
            for (; i <= v - 4; i += 4)
            {
                Vector128<float> e = Vector128.Load(x + i);
                m = Vector128.ConditionalSelect(Vector128.GreaterThan(e, m), e, m);
            }
            for (int j = 0; j < 4; j++)
                max = m[j] > max ? m[j] : max;
        }
        for (; i < v; i++)
            max = x[i] > max ? x[i] : max;
        int index = 0;
        for (int j = 0; j < v; j++)
        {
            if (x[j] == max)
            {
                index = j;
                break;
            }
        }
        job->Output[t] = index;
    }
}
