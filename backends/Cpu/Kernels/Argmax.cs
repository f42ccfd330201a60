using System.Runtime.CompilerServices;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// output[t] = the first index of the largest value of logits[t, :] (F32 [T, V] → I32 [T]). NaN never compares
/// greater, so NaNs are skipped; a row of only NaN gives 0. Pass 1 finds the max with vectors, pass 2 the first
/// index holding it (so the order in which pass 1 met equal values, +0 and −0 included, cannot change the index).
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
        float max = VectorDriver.Reduce(new LargestNumber(x), v);
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

    /// <summary>
    /// The largest value that is not NaN (−∞ when there is none). Its lanes never hold a NaN (GreaterOf never takes
    /// one), so IMaxOperator's IEEE maximum across them gives that same value.
    /// </summary>
    private readonly struct LargestNumber(float* x) : IMaxOperator
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Accumulate<TW, TV>(ref TV acc, nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged
            => acc = TW.GreaterOf(TW.Load(x + i), acc);
    }
}
