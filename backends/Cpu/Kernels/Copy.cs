using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// Byte copy between non-overlapping ranges, split into chunks across the workers: the tuner measures memory
/// bandwidth with this op, and one core alone cannot saturate the memory bus.
/// </summary>
internal static unsafe class Copy
{
    /// <summary>Bytes per work item.</summary>
    private const long Chunk = 1 << 20;

    private struct Job
    {
        public byte* Source, Destination;
        public long Bytes;
    }

    /// <summary>Runs the op on validated pointers.</summary>
    public static void Run(WorkerPool pool, byte* source, byte* destination, long bytes)
    {
        var job = new Job { Source = source, Destination = destination, Bytes = bytes };
        pool.Run(&Item, &job, (int)((bytes + Chunk - 1) / Chunk), bytes / 4);
    }

    private static void Item(void* context, int item, int worker)
    {
        var job = (Job*)context;
        long start = item * Chunk;
        long n = Math.Min(Chunk, job->Bytes - start);
        Buffer.MemoryCopy(job->Source + start, job->Destination + start, n, n);
    }
}
