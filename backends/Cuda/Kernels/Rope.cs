using ILGPU;
using Serving.Abstractions;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>Rope, in place: one thread per rotated pair (t, head, i &lt; RotaryDim/2). The angle is formed in f32 as
/// ggml does (pos · invFreq[i]); it is reduced to [−π, π] in f64 before sin and cos, so the GPU's fast f32 sine and
/// cosine (accurate on that range) serve any position. An odd position value never reaches outside the row.</summary>
internal static class Rope
{
    /// <summary>Launch parameters.</summary>
    public struct Shape
    {
        /// <summary>Rows.</summary>
        public int T;

        /// <summary>Heads.</summary>
        public int Heads;

        /// <summary>Head dim.</summary>
        public int HeadDim;

        /// <summary>Rotated elements per head.</summary>
        public int RotaryDim;

        /// <summary>1: NeoX pairing (i, i + RotaryDim/2); 0: adjacent pairs (2i, 2i + 1).</summary>
        public int NeoX;
    }

    /// <summary>The kernel.</summary>
    public static void Kernel(ArrayView<float> x, ArrayView<int> positions, ArrayView<float> inverseFrequencies, Shape shape, long total)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        int half = shape.RotaryDim / 2;
        for (long p = Grid.GlobalIndex.X; p < total; p += stride)
        {
            int i = (int)(p % half);
            long head = p / half;
            long t = head / shape.Heads;
            long baseIndex = head * shape.HeadDim;
            float angle = positions[t] * inverseFrequencies[i];
            double turns = Math.Round(angle / (2.0 * Math.PI));
            float reduced = (float)(angle - turns * (2.0 * Math.PI));
            float sin = MathF.Sin(reduced), cos = MathF.Cos(reduced);
            long a = shape.NeoX != 0 ? baseIndex + i : baseIndex + 2 * i;
            long b = shape.NeoX != 0 ? baseIndex + i + half : a + 1;
            float va = x[a], vb = x[b];
            x[a] = va * cos - vb * sin;
            x[b] = va * sin + vb * cos;
        }
    }

    /// <summary>Records Rope.</summary>
    public static void Record(CudaStream s, in TensorView x, in TensorView positions, in RopeConfig config)
    {
        var shape = new Shape
        {
            T = x.Rows,
            Heads = config.Heads,
            HeadDim = config.HeadDim,
            RotaryDim = config.RotaryDim,
            NeoX = config.Style == RopeStyle.NeoX ? 1 : 0,
        };
        long total = (long)x.Rows * config.Heads * (config.RotaryDim / 2);
        s.Kernels.Rope(s.Handle, s.Owner.Elements(total), s.F32(x), s.I32(positions), s.F32(config.InverseFrequencies), shape, total);
    }
}
