using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// output[r, :] = source[rows[r], :] for F32 rows of D floats: one row copy per gathered row (the rows that want
/// logits), spread over the workers when there are many. Exact, and each row depends only on its own index.
/// </summary>
internal static unsafe class Gather
{
    private struct Job
    {
        public float* Source;   // [T, D]
        public int* Rows;       // [R], validated in [0, T)
        public float* Output;   // [R, D]
        public int D;
    }

    /// <summary>Runs the op on validated pointers.</summary>
    public static void Run(WorkerPool pool, float* source, int* rows, int r, int d, float* output)
    {
        var job = new Job { Source = source, Rows = rows, Output = output, D = d };
        pool.Run(&Row, &job, r, (long)r * d);
    }

    private static void Row(void* context, int r, int worker)
    {
        var job = (Job*)context;
        long bytes = (long)job->D * sizeof(float);
        Buffer.MemoryCopy(job->Source + (long)job->Rows[r] * job->D, job->Output + (long)r * job->D, bytes, bytes);
    }
}
