using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>output[t, :] = dequant(table[ids[t], :]). table [V, D] any weight format, ids I32 [T], output F32 [T, D].</summary>
internal static unsafe class Embed
{
    private struct Job
    {
        public byte* Table;     // [V, D] rows of RowBytes
        public long RowBytes;
        public int* Ids;        // [T], validated in [0, V)
        public float* Output;   // [T, D]
        public int D;
        public delegate*<byte*, int, float*, void> DecodeRow; // the format's (WeightFormat.DecodeRow)
    }

    /// <summary>Runs the op on validated pointers, decoding rows with <paramref name="format"/>'s row decoder.</summary>
    public static void Run(WorkerPool pool, byte* table, long rowBytes, WeightFormat format, int* ids, int t, int d, float* output)
    {
        var job = new Job { Table = table, RowBytes = rowBytes, Ids = ids, Output = output, D = d, DecodeRow = format.DecodeRow };
        pool.Run(&Row, &job, t, (long)t * d);
    }

    private static void Row(void* context, int t, int worker)
    {
        var job = (Job*)context;
        job->DecodeRow(job->Table + job->Ids[t] * job->RowBytes, job->D, job->Output + (long)t * job->D);
    }
}
