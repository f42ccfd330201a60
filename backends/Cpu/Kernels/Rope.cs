using Serving.Abstractions;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// Rotary embedding in place on x F32 [T, Heads·HeadDim] at positions I32 [T]. For pair i in [0, RotaryDim/2):
/// angle = pos · invFreq[i]; Normal pairs (2i, 2i+1), NeoX pairs (i, i + RotaryDim/2); elements past RotaryDim
/// pass through. The angle, cos and sin are formed in f64 (pos · invFreq loses ~1e-4 rad in f32 at pos ≈ 3000),
/// once per (row, pair), and shared by all heads of the row.
/// </summary>
internal static unsafe class Rope
{
    private struct Job
    {
        public float* X;          // [T, Heads·HeadDim]
        public int* Positions;    // [T]
        public float* InvFreq;    // [RotaryDim/2]
        public int Heads, HeadDim, RotaryDim;
        public RopeStyle Style;
    }

    /// <summary>Runs the op on validated pointers.</summary>
    public static void Run(WorkerPool pool, float* x, int* positions, float* invFreq, int t, int heads, int headDim, int rotaryDim, RopeStyle style)
    {
        var job = new Job { X = x, Positions = positions, InvFreq = invFreq, Heads = heads, HeadDim = headDim, RotaryDim = rotaryDim, Style = style };
        pool.Run(&Row, &job, t, (long)t * heads * rotaryDim * 4);
    }

    private static void Row(void* context, int t, int worker)
    {
        var job = (Job*)context;
        int heads = job->Heads, dh = job->HeadDim, half = job->RotaryDim / 2;
        float* row = job->X + (long)t * heads * dh;
        double pos = job->Positions[t];
        // Normal: partner at +1, pairs at stride 2. NeoX: partner at +half, pairs at stride 1.
        int partner = job->Style == RopeStyle.Normal ? 1 : half;
        int stride = job->Style == RopeStyle.Normal ? 2 : 1;
        for (int i = 0; i < half; i++)
        {
            double angle = pos * job->InvFreq[i];
            float c = (float)Math.Cos(angle), s = (float)Math.Sin(angle);
            float* p = row + i * stride;
            for (int h = 0; h < heads; h++, p += dh)
            {
                float a = p[0], b = p[partner];
                p[0] = a * c - b * s;
                p[partner] = a * s + b * c;
            }
        }
    }
}
