using System.Runtime.CompilerServices;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>output = a + b element-wise over a flat F32 array (output may be either input).</summary>
internal static unsafe class Add
{
    /// <summary>Runs the op on validated pointers: a, b, output [count] each.</summary>
    public static void Run(WorkerPool pool, float* a, float* b, float* output, long count)
        => VectorDriver.MapParallel<Sum>(pool, a, b, output, count);

    /// <summary>a + b.</summary>
    private readonly struct Sum : IMapOperator
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Invoke<TW, TV>(TV a, TV b, TV p) where TW : struct, IFloatVector<TV> where TV : unmanaged
            => TW.Add(a, b);
    }
}
