using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Serving.Backends.Cpu.Kernels.Formats;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// Q6_K MatMul kernels (layout: <see cref="Q6_KBlock"/>): y = d·sc_g·(q − 32) per 16-element group g, q in 0..63. Per x block b (groups 2c, 2c+1 of the
/// super-block, c = b mod 8): unsigned q against x by maddubs, minus 32·(x pair sums) — |Σ (q − 32)·x| ≤ 2·32·127 per
/// int16 pair, exact — then multiplied by the group's int8 scale into int32 lanes (|lane| ≤ 2·8128·128 &lt; 2^24, so
/// its f32 conversion is exact) and accumulated with the f32 product d·xd_b.
/// </summary>
internal unsafe struct Q6_KDot : IKQuant
{
    /// <inheritdoc/>
    public static int BlockBytes => Q6_KBlock.BlockBytes;

    /// <inheritdoc/>
    public static bool BlockSums => false;

    /// <inheritdoc/>
    public static float Dot1(byte* w, sbyte* xq, float* xd, float* xs, int superBlocks)
    {
        if (!KQuant.UseAvx2)
            return Dot1Scalar(w, xq, xd, superBlocks);
        Vector256<float> acc = Vector256<float>.Zero;
        float* dx = stackalloc float[8];
        for (int sb = 0; sb < superBlocks; sb++, w += 210, xq += 256, xd += 8)
        {
            Simd.PrefetchAhead(w, 210);
            Vector256<float> d = Vector256.Create(Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(w + 208)));
            (d * Vector256.Load(xd)).Store(dx);
            Vector256<short> scales = Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(w + 192)));
            for (int h = 0; h < 2; h++)
            {
                Q6_KBlock.Unpack(w, h, out Vector256<byte> q0, out Vector256<byte> q1, out Vector256<byte> q2, out Vector256<byte> q3);
                acc = Steps(q0, q1, q2, q3, HalfScales(scales, h), xq + 128 * h, dx + 4 * h, acc);
            }
        }
        return Vector256.Sum(acc);
    }

    /// <inheritdoc/>
    public static void Dot4x1(byte* w, sbyte* xq, float* xd, float* xs, int k, float* y, int yStride)
    {
        int blocks = k / 32, superBlocks = k / 256;
        if (!KQuant.UseAvx2)
        {
            for (int r = 0; r < 4; r++)
                y[r * yStride] = Dot1Scalar(w, xq + (long)r * k, xd + r * blocks, superBlocks);
            return;
        }
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        sbyte* x0 = xq, x1 = xq + k, x2 = xq + 2 * k, x3 = xq + 3 * k;
        float* dx = stackalloc float[32]; // [row·8 + block]: d·xd_b
        for (int sb = 0; sb < superBlocks; sb++, w += 210)
        {
            Simd.PrefetchAhead(w, 210);
            Vector256<float> d = Vector256.Create(Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(w + 208)));
            int o = 8 * sb;
            (d * Vector256.Load(xd + o)).Store(dx);
            (d * Vector256.Load(xd + blocks + o)).Store(dx + 8);
            (d * Vector256.Load(xd + 2 * blocks + o)).Store(dx + 16);
            (d * Vector256.Load(xd + 3 * blocks + o)).Store(dx + 24);
            Vector256<short> scales = Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(w + 192)));
            for (int h = 0; h < 2; h++)
            {
                Q6_KBlock.Unpack(w, h, out Vector256<byte> q0, out Vector256<byte> q1, out Vector256<byte> q2, out Vector256<byte> q3);
                Vector256<byte> half = HalfScales(scales, h);
                int xo = 256 * sb + 128 * h;
                a0 = Steps(q0, q1, q2, q3, half, x0 + xo, dx + 4 * h, a0);
                a1 = Steps(q0, q1, q2, q3, half, x1 + xo, dx + 8 + 4 * h, a1);
                a2 = Steps(q0, q1, q2, q3, half, x2 + xo, dx + 16 + 4 * h, a2);
                a3 = Steps(q0, q1, q2, q3, half, x3 + xo, dx + 24 + 4 * h, a3);
            }
        }
        y[0] = Vector256.Sum(a0);
        y[yStride] = Vector256.Sum(a1);
        y[2 * yStride] = Vector256.Sum(a2);
        y[3 * yStride] = Vector256.Sum(a3);
    }

    // Byte shuffles picking, from the 8 int16 scales of a half (in both 128-bit lanes), group 2c's scale for the
    // low lane (elements 0..15 of block c) and group 2c+1's for the high lane (elements 16..31).
    private static readonly Vector256<byte> ScaleMask0 = Mask(0);
    private static readonly Vector256<byte> ScaleMask1 = Mask(1);
    private static readonly Vector256<byte> ScaleMask2 = Mask(2);
    private static readonly Vector256<byte> ScaleMask3 = Mask(3);

    private static Vector256<byte> Mask(int c)
    {
        byte a = (byte)(4 * c), b = (byte)(4 * c + 2);
        return Vector256.Create(Vector128.Create(a, (byte)(a + 1), a, (byte)(a + 1), a, (byte)(a + 1), a, (byte)(a + 1),
                                                 a, (byte)(a + 1), a, (byte)(a + 1), a, (byte)(a + 1), a, (byte)(a + 1)),
                                Vector128.Create(b, (byte)(b + 1), b, (byte)(b + 1), b, (byte)(b + 1), b, (byte)(b + 1),
                                                 b, (byte)(b + 1), b, (byte)(b + 1), b, (byte)(b + 1), b, (byte)(b + 1)));
    }

    // The 8 int16 scales of half h (groups 8h..8h+7) in both 128-bit lanes.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> HalfScales(Vector256<short> scales, int h)
        => (h == 0 ? Avx2.Permute2x128(scales, scales, 0x00) : Avx2.Permute2x128(scales, scales, 0x11)).AsByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Steps(Vector256<byte> q0, Vector256<byte> q1, Vector256<byte> q2, Vector256<byte> q3,
        Vector256<byte> half, sbyte* x, float* dx, Vector256<float> acc)
    {
        acc = Step(q0, Avx2.Shuffle(half, ScaleMask0).AsInt16(), x, dx[0], acc);
        acc = Step(q1, Avx2.Shuffle(half, ScaleMask1).AsInt16(), x + 32, dx[1], acc);
        acc = Step(q2, Avx2.Shuffle(half, ScaleMask2).AsInt16(), x + 64, dx[2], acc);
        return Step(q3, Avx2.Shuffle(half, ScaleMask3).AsInt16(), x + 96, dx[3], acc);
    }

    // One 32-element block: int16 pairs Σ (q − 32)·x, times the groups' scales into int32 lanes, then d·xd_b.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Step(Vector256<byte> q, Vector256<short> scale, sbyte* x, float dx, Vector256<float> acc)
    {
        Vector256<sbyte> xv = Vector256.Load(x);
        Vector256<short> pairs = Avx2.MultiplyAddAdjacent(q, xv) - Avx2.MultiplyAddAdjacent(Vector256.Create((byte)32), xv);
        Vector256<int> lanes = Avx2.MultiplyAddAdjacent(pairs, scale);
        return Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(lanes), Vector256.Create(dx), acc);
    }

    // The scalar tiers: the same formula one element at a time (its own rounding order; not bit-equal to AVX2).
    private static float Dot1Scalar(byte* w, sbyte* xq, float* xd, int superBlocks)
    {
        float sum = 0;
        for (int sb = 0; sb < superBlocks; sb++, w += 210)
        {
            float d = Simd.HalfToFloat(Unsafe.ReadUnaligned<ushort>(w + 208));
            sbyte* scales = (sbyte*)(w + 192);
            for (int c = 0; c < 8; c++)
            {
                int b = 8 * sb + c;
                sbyte* x = xq + 32 * b;
                int isum = 0;
                for (int i = 0; i < 32; i++)
                {
                    int e = 32 * c + i;
                    isum += scales[e >> 4] * (Q6_KBlock.Quant(w, e) - 32) * x[i];
                }
                sum += d * xd[b] * isum;
            }
        }
        return sum;
    }
}
