using System.Runtime.CompilerServices;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// output = a + b element-wise over F32 (output may be a or b), with b of a's shape (<see cref="Run"/>, one flat pass)
/// or one row added to every row of a (<see cref="RunBroadcast"/>, a bias). One rounding per element either way, so
/// both forms give the same bits and no row depends on another.
/// </summary>
internal static unsafe class Add
{
    /// <summary>Runs the op on validated pointers: a, b, output [count] each.</summary>
    public static void Run(WorkerPool pool, float* a, float* b, float* output, long count)
        => VectorDriver.MapParallel<Sum>(pool, a, b, output, count);

    private struct BroadcastJob
    {
        public float* A, B, Output;   // A, Output [Rows, Cols]; B [Cols]
        public int Cols;
    }

    /// <summary>Runs the op on validated pointers: a, output [rows, cols]; b [cols] added to every row.</summary>
    public static void RunBroadcast(WorkerPool pool, float* a, float* b, float* output, int rows, int cols)
    {
        var job = new BroadcastJob { A = a, B = b, Output = output, Cols = cols };
        pool.Run(&BroadcastRow, &job, rows, (long)rows * cols);
    }

    private static void BroadcastRow(void* context, int row, int worker)
    {
        var job = (BroadcastJob*)context;
        long at = (long)row * job->Cols;
        VectorDriver.Map<Sum>(job->A + at, job->B, job->Output + at, job->Cols);
    }

    /// <summary>a + b.</summary>
    private readonly struct Sum : IMapOperator
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Invoke<TW, TV>(TV a, TV b, TV p) where TW : struct, IFloatVector<TV> where TV : unmanaged
            => TW.Add(a, b);
    }
}
