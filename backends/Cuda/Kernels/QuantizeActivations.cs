using ILGPU;
using ILGPU.Runtime;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>
/// Rounds f32 activation rows to q8 blocks of 32 once per quantized MatMul, so the weight kernels multiply int8 by int8
/// (dp4a on the GPU): d = max|x| / 127, q = round-to-even(x · (1/d)) in [−127, 127], d kept in f32 (as the Cpu backend
/// does). One warp (serial: one thread) per block, a lane per element. A row's quants depend on that row alone.
/// </summary>
internal static class QuantizeActivations
{
    /// <summary>The kernel: blocks = T · K/32 units.</summary>
    public static void Kernel<TM>(ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> xd, int blocks)
        where TM : struct, IKernelMode
    {
        int unit = Lanes.Unit<TM>();
        if (unit >= blocks) return;
        long first = (long)unit * 32;
        if (default(TM).Serial)
        {
            float amax = 0f;
            for (int i = 0; i < 32; i++)
                amax = MathF.Max(amax, MathF.Abs(x[first + i]));
            float d = amax / 127f;
            float inv = d != 0f ? 1f / d : 0f;
            xd[unit] = d;
            for (int i = 0; i < 32; i++)
                xq[first + i] = (byte)(sbyte)(int)MathF.Round(x[first + i] * inv);
        }
        else
        {
            int lane = Lanes.Lane<TM>();
            float v = x[first + lane];
            float amax = Lanes.MaxAll<TM>(MathF.Abs(v));
            float d = amax / 127f;
            float inv = d != 0f ? 1f / d : 0f;
            if (lane == 0) xd[unit] = d;
            xq[first + lane] = (byte)(sbyte)(int)MathF.Round(v * inv);
        }
    }

    /// <summary>Records the quantization of x [T, K] into the stream's scratch; returns the views MatMul reads.</summary>
    public static (ArrayView<int> Quants, ArrayView<float> Scales) Record(CudaStream s, in Serving.Abstractions.TensorView x)
    {
        long elements = (long)x.Rows * x.Cols;
        int blocks = checked((int)(elements / 32));
        var (quants, scales) = s.ActivationScratch(elements, blocks);
        s.Kernels.QuantizeActivations(s.Handle, s.Owner.Units(blocks, 8), s.F32(x), quants, scales, blocks);
        return (quants.Cast<int>(), scales);
    }
}
