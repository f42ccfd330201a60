using Serving.Abstractions;
using Serving.Backends.Cpu.Kernels.MatMul;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>output[t, :] = dequant(table[ids[t], :]). table [V, D] any weight type, ids I32 [T], output F32 [T, D].</summary>
internal static unsafe class Embed
{
    private struct Job
    {
        public byte* Table;     // [V, D] rows of RowBytes
        public long RowBytes;
        public int* Ids;        // [T], validated in [0, V)
        public float* Output;   // [T, D]
        public int D;
        public DataType Type;
    }

    /// <summary>Runs the op on validated pointers.</summary>
    public static void Run(WorkerPool pool, byte* table, long rowBytes, DataType type, int* ids, int t, int d, float* output)
    {
        var job = new Job { Table = table, RowBytes = rowBytes, Ids = ids, Output = output, D = d, Type = type };
        pool.Run(&Row, &job, t, (long)t * d);
    }

    private static void Row(void* context, int t, int worker)
    {
        var job = (Job*)context;
        byte* src = job->Table + job->Ids[t] * job->RowBytes;
        float* dst = job->Output + (long)t * job->D;
        switch (job->Type)
        {
            case DataType.F32:
                Buffer.MemoryCopy(src, dst, (long)job->D * sizeof(float), (long)job->D * sizeof(float));
                break;
            case DataType.F16:
                MatMulDriver.ConvertRow<MatMulF16>(src, dst, job->D);
                break;
            case DataType.BF16:
                MatMulDriver.ConvertRow<MatMulBF16>(src, dst, job->D);
                break;
            case DataType.Q8_0:
                QuantBlock.Dequantize<MatMulQ8_0>(src, job->D / 32, dst);
                break;
            case DataType.Q4_0:
                QuantBlock.Dequantize<MatMulQ4_0>(src, job->D / 32, dst);
                break;
            case DataType.Q5_0:
                QuantBlock.Dequantize<MatMulQ5_0>(src, job->D / 32, dst);
                break;
            case DataType.Q4_K:
                KQuantMinDot<MatMulQ4_K>.Dequantize(src, job->D / 256, dst);
                break;
            case DataType.Q5_K:
                KQuantMinDot<MatMulQ5_K>.Dequantize(src, job->D / 256, dst);
                break;
            case DataType.Q6_K:
                MatMulQ6_K.Dequantize(src, job->D / 256, dst);
                break;
        }
    }
}
