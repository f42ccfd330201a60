using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>output = a + b element-wise over a flat F32 array (output may be either input).</summary>
internal static unsafe class Add
{
    /// <summary>Elements per work item.</summary>
    private const int Chunk = 32 * 1024;

    private struct Job
    {
        public float* A, B, Output;   // [T·D] each
        public long Count;
    }

    /// <summary>Runs the op on validated pointers.</summary>
    public static void Run(WorkerPool pool, float* a, float* b, float* output, long count)
    {
        var job = new Job { A = a, B = b, Output = output, Count = count };
        pool.Run(&Item, &job, (int)((count + Chunk - 1) / Chunk), count);
    }

    private static void Item(void* context, int item, int worker)
    {
        var job = (Job*)context;
        long start = (long)item * Chunk;
        int n = (int)Math.Min(Chunk, job->Count - start);
        float* a = job->A + start, b = job->B + start, o = job->Output + start;
        int i = 0;
        if (Simd.Tier == SimdTier.V512)
        {
            for (; i <= n - 16; i += 16)
                (Vector512.Load(a + i) + Vector512.Load(b + i)).Store(o + i);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            for (; i <= n - 8; i += 8)
                (Vector256.Load(a + i) + Vector256.Load(b + i)).Store(o + i);
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            for (; i <= n - 4; i += 4)
                (Vector128.Load(a + i) + Vector128.Load(b + i)).Store(o + i);
        }
        for (; i < n; i++)
            o[i] = a[i] + b[i];
    }
}
