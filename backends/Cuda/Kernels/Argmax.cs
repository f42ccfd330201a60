using ILGPU;
using Serving.Abstractions;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>
/// Argmax: one warp (serial: one thread) per row; each lane scans columns lane, lane + 32, … and keeps the largest
/// key, then the lanes' keys are reduced with a 64-bit max (ILGPU.Algorithms). A key orders values as floats (high 32
/// bits; NaN lowest, so it never wins, −0 as +0) and, for equal values, the smaller column first (low 32 bits hold
/// 2³² − 1 − column): max is exact, so the first index wins ties in any order; a row of NaN gives column 0.
/// </summary>
internal static class Argmax
{
    /// <summary>The order key of value <paramref name="v"/> at <paramref name="column"/>.</summary>
    public static ulong Key(float v, int column)
    {
        uint bits = global::ILGPU.Interop.FloatAsInt(v);
        uint ordered;
        if ((bits & 0x7FFFFFFFu) > 0x7F800000u) ordered = 0u; // NaN: below everything
        else if ((bits & 0x7FFFFFFFu) == 0u) ordered = 0x80000000u; // ±0 alike
        else ordered = (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
        return ((ulong)ordered << 32) | (0xFFFFFFFFu - (uint)column);
    }

    /// <summary>The kernel.</summary>
    public static void Kernel<TM>(ArrayView<float> logits, ArrayView<int> output, int rows, int cols)
        where TM : struct, IKernelMode
    {
        int unit = Lanes.Unit<TM>();
        if (unit >= rows) return;
        int lane = Lanes.Lane<TM>();
        int step = default(TM).Serial ? 1 : Lanes.Count;
        long row = (long)unit * cols;
        ulong best = 0;
        for (int c = lane; c < cols; c += step)
        {
            ulong key = Key(logits[row + c], c);
            if (key > best) best = key;
        }
        best = Lanes.Max<TM>(best);
        if (Lanes.Leader<TM>())
            output[unit] = (int)(0xFFFFFFFFu - (uint)(best & 0xFFFFFFFFu));
    }

    /// <summary>Records Argmax.</summary>
    public static void Record(CudaStream s, in TensorView logits, in TensorView output, int warpsPerGroup)
        => s.Kernels.Argmax(s.Handle, s.Owner.Units(logits.Rows, warpsPerGroup), s.F32(logits), s.I32(output), logits.Rows, logits.Cols);
}
