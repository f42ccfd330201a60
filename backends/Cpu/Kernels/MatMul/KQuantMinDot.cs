using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Kernels.Formats;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// A scale-and-min K-quant (<see cref="IKQuantMinQuants"/>) against q8 activations. Per x block b (= sub-block j of
/// the super-block): Σ y·x ≈ (d·sc_j)·xd_b·Σ q·xq − (dmin·m_j)·xs_b. The first term goes into one vector accumulator,
/// the min term into another; the row's result is Sum(first) − Sum(mins). The unsigned dot is exact for q ≤ 31.
/// </summary>
internal unsafe struct KQuantMinDot<TQ> : IKQuant where TQ : struct, IKQuantMinQuants
{
    /// <inheritdoc/>
    public static int BlockBytes => TQ.BlockBytes;

    /// <inheritdoc/>
    public static bool BlockSums => true;

    /// <inheritdoc/>
    public static float Dot1(byte* w, sbyte* xq, float* xd, float* xs, int superBlocks)
    {
        if (!KQuant.UseAvx2)
            return Dot1Scalar(w, xq, xd, xs, superBlocks);
        Vector256<float> acc = Vector256<float>.Zero, mins = Vector256<float>.Zero;
        float* sc = stackalloc float[8];
        for (int sb = 0; sb < superBlocks; sb++, w += TQ.BlockBytes, xq += 256, xd += 8, xs += 8)
        {
            Simd.PrefetchAhead(w, TQ.BlockBytes);
            Prepare(w, out Vector256<float> dsc, out Vector256<float> dm);
            (dsc * Vector256.Load(xd)).Store(sc);
            mins = Vector256.MultiplyAddEstimate(dm, Vector256.Load(xs), mins);
            for (int g = 0; g < 4; g++)
            {
                TQ.Unpack(w, g, out Vector256<byte> lo, out Vector256<byte> hi);
                acc = Step(lo, hi, xq + 64 * g, sc + 2 * g, acc);
            }
        }
        return Vector256.Sum(acc) - Vector256.Sum(mins);
    }

    /// <inheritdoc/>
    public static void Dot4x1(byte* w, sbyte* xq, float* xd, float* xs, int k, float* y, int yStride)
    {
        int blocks = k / 32, superBlocks = k / 256;
        if (!KQuant.UseAvx2)
        {
            for (int r = 0; r < 4; r++)
                y[r * yStride] = Dot1Scalar(w, xq + (long)r * k, xd + r * blocks, xs + r * blocks, superBlocks);
            return;
        }
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3 = default;
        sbyte* x0 = xq, x1 = xq + k, x2 = xq + 2 * k, x3 = xq + 3 * k;
        float* sc = stackalloc float[32]; // [row·8 + sub-block]: (d·sc_j)·xd_b
        for (int sb = 0; sb < superBlocks; sb++, w += TQ.BlockBytes)
        {
            Simd.PrefetchAhead(w, TQ.BlockBytes);
            Prepare(w, out Vector256<float> dsc, out Vector256<float> dm);
            int o = 8 * sb;
            (dsc * Vector256.Load(xd + o)).Store(sc);
            (dsc * Vector256.Load(xd + blocks + o)).Store(sc + 8);
            (dsc * Vector256.Load(xd + 2 * blocks + o)).Store(sc + 16);
            (dsc * Vector256.Load(xd + 3 * blocks + o)).Store(sc + 24);
            m0 = Vector256.MultiplyAddEstimate(dm, Vector256.Load(xs + o), m0);
            m1 = Vector256.MultiplyAddEstimate(dm, Vector256.Load(xs + blocks + o), m1);
            m2 = Vector256.MultiplyAddEstimate(dm, Vector256.Load(xs + 2 * blocks + o), m2);
            m3 = Vector256.MultiplyAddEstimate(dm, Vector256.Load(xs + 3 * blocks + o), m3);
            int xo = 256 * sb;
            for (int g = 0; g < 4; g++)
            {
                TQ.Unpack(w, g, out Vector256<byte> lo, out Vector256<byte> hi);
                int go = xo + 64 * g;
                a0 = Step(lo, hi, x0 + go, sc + 2 * g, a0);
                a1 = Step(lo, hi, x1 + go, sc + 8 + 2 * g, a1);
                a2 = Step(lo, hi, x2 + go, sc + 16 + 2 * g, a2);
                a3 = Step(lo, hi, x3 + go, sc + 24 + 2 * g, a3);
            }
        }
        y[0] = Vector256.Sum(a0) - Vector256.Sum(m0);
        y[yStride] = Vector256.Sum(a1) - Vector256.Sum(m1);
        y[2 * yStride] = Vector256.Sum(a2) - Vector256.Sum(m2);
        y[3 * yStride] = Vector256.Sum(a3) - Vector256.Sum(m3);
    }

    // d·sc_j and dmin·m_j for the 8 sub-blocks (exact in f32: an f16 times a 6-bit integer).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prepare(byte* blk, out Vector256<float> dsc, out Vector256<float> dm)
    {
        float d = Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(blk));
        float dmin = Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(blk + 2));
        (ulong scales, ulong mins) = ScaleMinK.ScalesMins(blk + 4);
        dsc = KQuant.BytesToFloats(scales) * Vector256.Create(d);
        dm = KQuant.BytesToFloats(mins) * Vector256.Create(dmin);
    }

    // Two sub-blocks (2g, 2g+1) of one x row into its accumulator; s = that row's two block scales.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Step(Vector256<byte> lo, Vector256<byte> hi, sbyte* x, float* s, Vector256<float> acc)
    {
        Vector256<int> p0 = KQuant.DotUnsigned(lo, Vector256.Load(x));
        acc = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(p0), Vector256.Create(s[0]), acc);
        Vector256<int> p1 = KQuant.DotUnsigned(hi, Vector256.Load(x + 32));
        return Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(p1), Vector256.Create(s[1]), acc);
    }

    // The scalar tiers: the same formula one element at a time (its own rounding order; not bit-equal to AVX2).
    private static float Dot1Scalar(byte* w, sbyte* xq, float* xd, float* xs, int superBlocks)
    {
        float sum = 0, minSum = 0;
        for (int sb = 0; sb < superBlocks; sb++, w += TQ.BlockBytes)
        {
            float d = Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(w));
            float dmin = Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(w + 2));
            (ulong scales, ulong mins) = ScaleMinK.ScalesMins(w + 4);
            for (int j = 0; j < 8; j++)
            {
                int b = 8 * sb + j;
                sbyte* x = xq + 32 * b;
                int isum = 0;
                for (int i = 0; i < 32; i++)
                    isum += TQ.Quant(w, j, i) * x[i];
                sum += d * (byte)(scales >> (8 * j)) * xd[b] * isum;
                minSum += dmin * (byte)(mins >> (8 * j)) * xs[b];
            }
        }
        return sum - minSum;
    }
}
