using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// output = silu(gate) · up = gate / (1 + exp(−gate)) · up, element-wise over F32 [T, F] seen as one flat array
/// (output may be either input: each element is read before it is written). The last partial vector goes through
/// the same vector exp via a padded copy, so an element's value never depends on where the tensor ends.
/// </summary>
internal static unsafe class SwiGlu
{
    /// <summary>Elements per work item (a multiple of every vector width).</summary>
    private const int Chunk = 16 * 1024;

    private struct Job
    {
        public float* Gate, Up, Output;   // [T·F] each
        public long Count;
    }

    /// <summary>Runs the op on validated pointers.</summary>
    public static void Run(WorkerPool pool, float* gate, float* up, float* output, long count)
    {
        var job = new Job { Gate = gate, Up = up, Output = output, Count = count };
        pool.Run(&Item, &job, (int)((count + Chunk - 1) / Chunk), count);
    }

    private static void Item(void* context, int item, int worker)
    {
        var job = (Job*)context;
        long start = (long)item * Chunk;
        int n = (int)Math.Min(Chunk, job->Count - start);
        Apply(job->Gate + start, job->Up + start, job->Output + start, n);
    }

    private static void Apply(float* g, float* u, float* o, int n)
    {
        int lanes = Simd.FloatLanes;
        int i = 0;
        for (; i <= n - lanes; i += lanes)
            Vector(g + i, u + i, o + i);
        if (i < n)
        {
            // Pad the tail to a full vector (zeros are harmless: silu(0)·0 = 0) and keep only the real lanes.
            float* pg = stackalloc float[16];
            float* pu = stackalloc float[16];
            float* po = stackalloc float[16];
            new Span<float>(pg, 16).Clear();
            new Span<float>(pu, 16).Clear();
            int rest = n - i;
            for (int j = 0; j < rest; j++)
            {
                pg[j] = g[i + j];
                pu[j] = u[i + j];
            }
            Vector(pg, pu, po);
            for (int j = 0; j < rest; j++)
                o[i + j] = po[j];
        }
    }

    /// <summary>One vector of <see cref="Simd.FloatLanes"/> elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Vector(float* g, float* u, float* o)
    {
        if (Simd.Tier == SimdTier.V512)
        {
            Vector512<float> gv = Vector512.Load(g);
            (gv / (Vector512<float>.One + Vector512.Exp(-gv)) * Vector512.Load(u)).Store(o);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            Vector256<float> gv = Vector256.Load(g);
            (gv / (Vector256<float>.One + Vector256.Exp(-gv)) * Vector256.Load(u)).Store(o);
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> gv = Vector128.Load(g);
            (gv / (Vector128<float>.One + Vector128.Exp(-gv)) * Vector128.Load(u)).Store(o);
        }
        else
        {
            float gs = *g;
            *o = gs / (1f + MathF.Exp(-gs)) * *u;
        }
    }
}
