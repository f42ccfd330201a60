using System.Runtime.CompilerServices;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// output = silu(gate) · up = gate / (1 + exp(−gate)) · up, element-wise over F32 [T, F] seen as one flat array
/// (output may be either input: each element is read before it is written). The last partial vector goes through
/// the same vector exp via a padded copy (<see cref="IMapOperator.PadTail"/>), so an element's value never depends on
/// where the tensor ends.
/// </summary>
internal static unsafe class SwiGlu
{
    /// <summary>Runs the op on validated pointers: gate, up, output [count] each.</summary>
    public static void Run(WorkerPool pool, float* gate, float* up, float* output, long count)
        => VectorDriver.MapParallel<GatedSilu>(pool, gate, up, output, count);

    /// <summary>g / (1 + e^−g) · u.</summary>
    private readonly struct GatedSilu : IMapOperator
    {
        public static bool PadTail => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TV Invoke<TW, TV>(TV g, TV u, TV p) where TW : struct, IFloatVector<TV> where TV : unmanaged
            => TW.Multiply(TW.Divide(g, TW.Add(TW.Create(1f), TW.Exp(TW.Negate(g)))), u);
    }
}
