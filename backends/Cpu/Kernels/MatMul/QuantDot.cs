using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// Dot products of a q8-quantized x row (xq int8 [K], xd f32 [K/32]) with block-quantized weight rows.
/// Per block: an exact int8 dot (<see cref="Int8Dot"/>), converted to f32 and scaled by d_w · d_x into a vector
/// accumulator; the accumulator is summed once at the end. The 512-bit tier runs the 256-bit kernels: two blocks per
/// 512-bit vector (two scales per vector, and no vpsignb at 512 bits) measured 1.3–3.5× slower on a Zen 5 (AVX-512). <see cref="Dot4"/> gives bit-identical results to four <see cref="Dot1"/> calls.
/// </summary>
internal static unsafe class QuantDot
{
    /// <summary>
    /// Σ over blocks of d_w·d_x·Σ q_w·q_x for one weight row of <paramref name="blocks"/> blocks; the row's scales
    /// d_w come pre-converted to f32 in <paramref name="ws"/> [blocks] (see <see cref="ConvertScales"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot1<TB>(byte* w, float* ws, sbyte* xq, float* xd, int blocks) where TB : struct, IQuantBlock
    {
        int bb = TB.BlockBytes;
        int b = 0;
        if (Simd.Tier >= SimdTier.V256)
        {
            Vector256<float> acc = Vector256<float>.Zero;
            for (; b < blocks; b++)
            {
                Vector256<sbyte> xv = Vector256.Load(xq + b * 32);
                Vector256<int> p = TB.Dot256(w + b * bb, xv, TB.XBias256(xv));
                acc = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(p), Vector256.Create(ws[b] * xd[b]), acc);
            }
            return Vector256.Sum(acc);
        }
        if (Simd.Tier == SimdTier.V128)
        {
            Vector128<float> acc = Vector128<float>.Zero;
            for (; b < blocks; b++)
            {
                byte* blk = w + b * bb;
                Vector128<int> p = Int8Dot.Dot(TB.QuantsLo128(blk), Vector128.Load(xq + b * 32))
                                 + Int8Dot.Dot(TB.QuantsHi128(blk), Vector128.Load(xq + b * 32 + 16));
                acc = Vector128.MultiplyAddEstimate(Vector128.ConvertToSingle(p), Vector128.Create(ws[b] * xd[b]), acc);
            }
            return Vector128.Sum(acc);
        }
        float total = 0f;
        for (; b < blocks; b++)
        {
            byte* blk = w + b * bb;
            sbyte* q = xq + b * 32;
            int isum = 0;
            for (int i = 0; i < 32; i++)
                isum += TB.Quant(blk, i) * q[i];
            total += ws[b] * xd[b] * isum;
        }
        return total;
    }

    /// <summary>
    /// y[r] = Dot1(w + r·rowBytes, ws + r·blocks, …) for r in 0..3, sharing each x block load across the four rows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dot4<TB>(byte* w, long rowBytes, float* ws, sbyte* xq, float* xd, int blocks, float* y) where TB : struct, IQuantBlock
    {
        int bb = TB.BlockBytes;
        byte* w0 = w, w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes;
        float* s0p = ws, s1p = ws + blocks, s2p = ws + 2 * blocks, s3p = ws + 3 * blocks;
        if (Simd.Tier >= SimdTier.V256)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            // The block scales d_w·d_x of 8 blocks × 4 rows by 4 vector multiplies (the same f32 products, w-side
            // operand first, as the scalar s[b]·xd[b] below), reloaded as broadcasts: [row·8 + block].
            float* sc = stackalloc float[32];
            int b = 0;
            for (; b <= blocks - 8; b += 8)
            {
                Vector256<float> dx8 = Vector256.Load(xd + b);
                (Vector256.Load(s0p + b) * dx8).Store(sc);
                (Vector256.Load(s1p + b) * dx8).Store(sc + 8);
                (Vector256.Load(s2p + b) * dx8).Store(sc + 16);
                (Vector256.Load(s3p + b) * dx8).Store(sc + 24);
                for (int j = 0; j < 8; j++)
                {
                    Vector256<sbyte> xv = Vector256.Load(xq + (b + j) * 32);
                    Vector256<short> xb = TB.XBias256(xv);
                    long o = (long)(b + j) * bb;
                    a0 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w0 + o, xv, xb)), Vector256.Create(sc[j]), a0);
                    a1 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w1 + o, xv, xb)), Vector256.Create(sc[8 + j]), a1);
                    a2 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w2 + o, xv, xb)), Vector256.Create(sc[16 + j]), a2);
                    a3 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w3 + o, xv, xb)), Vector256.Create(sc[24 + j]), a3);
                }
            }
            for (; b < blocks; b++)
            {
                Vector256<sbyte> xv = Vector256.Load(xq + b * 32);
                Vector256<short> xb = TB.XBias256(xv);
                float dx = xd[b];
                long o = (long)b * bb;
                a0 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w0 + o, xv, xb)), Vector256.Create(s0p[b] * dx), a0);
                a1 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w1 + o, xv, xb)), Vector256.Create(s1p[b] * dx), a1);
                a2 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w2 + o, xv, xb)), Vector256.Create(s2p[b] * dx), a2);
                a3 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w3 + o, xv, xb)), Vector256.Create(s3p[b] * dx), a3);
            }
            y[0] = Vector256.Sum(a0);
            y[1] = Vector256.Sum(a1);
            y[2] = Vector256.Sum(a2);
            y[3] = Vector256.Sum(a3);
        }
        else
        {
            y[0] = Dot1<TB>(w0, s0p, xq, xd, blocks);
            y[1] = Dot1<TB>(w1, s1p, xq, xd, blocks);
            y[2] = Dot1<TB>(w2, s2p, xq, xd, blocks);
            y[3] = Dot1<TB>(w3, s3p, xq, xd, blocks);
        }
    }

    /// <summary>
    /// <see cref="Dot4"/> for one x row, reading the four rows' f16 scales where it uses them (8 blocks at a time, the
    /// same exact conversion as <see cref="ConvertScales"/>, so the same products and bits) instead of from a converted
    /// tile: decode reads each weight block once, and a separate pass over the rows' scales first (which touches every
    /// cache line of the rows) left the core waiting on memory in that pass and computing from cache in the next, never
    /// both at once. Here the prefetches ahead of each row run while the blocks behind them are being multiplied.
    /// Falls back to converting into <paramref name="ws"/> [4 · blocks] and <see cref="Dot4"/> below the 256-bit tier.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dot4Streaming<TB>(byte* w, long rowBytes, float* ws, sbyte* xq, float* xd, int blocks, float* y) where TB : struct, IQuantBlock
    {
        if (Simd.Tier < SimdTier.V256)
        {
            for (int r = 0; r < 4; r++)
                ConvertScales<TB>(w + r * rowBytes, blocks, ws + r * blocks);
            Dot4<TB>(w, rowBytes, ws, xq, xd, blocks, y);
            return;
        }
        int bb = TB.BlockBytes;
        byte* w0 = w, w1 = w + rowBytes, w2 = w + 2 * rowBytes, w3 = w + 3 * rowBytes;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float* sc = stackalloc float[32];
        int b = 0;
        for (; b <= blocks - 8; b += 8)
        {
            Vector256<float> dx8 = Vector256.Load(xd + b);
            long o8 = (long)b * bb;
            (Scales8<TB>(w0 + o8) * dx8).Store(sc);
            (Scales8<TB>(w1 + o8) * dx8).Store(sc + 8);
            (Scales8<TB>(w2 + o8) * dx8).Store(sc + 16);
            (Scales8<TB>(w3 + o8) * dx8).Store(sc + 24);
            for (int j = 0; j < 8; j++)
            {
                Vector256<sbyte> xv = Vector256.Load(xq + (b + j) * 32);
                Vector256<short> xb = TB.XBias256(xv);
                long o = o8 + (long)j * bb;
                a0 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w0 + o, xv, xb)), Vector256.Create(sc[j]), a0);
                a1 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w1 + o, xv, xb)), Vector256.Create(sc[8 + j]), a1);
                a2 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w2 + o, xv, xb)), Vector256.Create(sc[16 + j]), a2);
                a3 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w3 + o, xv, xb)), Vector256.Create(sc[24 + j]), a3);
            }
        }
        for (; b < blocks; b++)
        {
            Vector256<sbyte> xv = Vector256.Load(xq + b * 32);
            Vector256<short> xb = TB.XBias256(xv);
            float dx = xd[b];
            long o = (long)b * bb;
            a0 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w0 + o, xv, xb)), Vector256.Create(TB.Scale(w0 + o) * dx), a0);
            a1 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w1 + o, xv, xb)), Vector256.Create(TB.Scale(w1 + o) * dx), a1);
            a2 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w2 + o, xv, xb)), Vector256.Create(TB.Scale(w2 + o) * dx), a2);
            a3 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(TB.Dot256(w3 + o, xv, xb)), Vector256.Create(TB.Scale(w3 + o) * dx), a3);
        }
        y[0] = Vector256.Sum(a0);
        y[1] = Vector256.Sum(a1);
        y[2] = Vector256.Sum(a2);
        y[3] = Vector256.Sum(a3);
    }

    // The f16 scales of 8 consecutive blocks at p as f32 (exact), asking for the cache lines ahead of them.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Scales8<TB>(byte* p) where TB : struct, IQuantBlock
    {
        int bb = TB.BlockBytes;
        Simd.PrefetchAhead(p, 8 * bb);
        if (Avx2.IsSupported)
        {
            // The 8 halves packed 4 to a 64-bit integer in general registers, moved over in 2 inserts (not 8) and
            // widened to 32 bits in one instruction: the vector pipes are this kernel's bound, the scalar ones are not.
            ulong lo = Unsafe.ReadUnaligned<ushort>(p) | (ulong)Unsafe.ReadUnaligned<ushort>(p + bb) << 16
                | (ulong)Unsafe.ReadUnaligned<ushort>(p + 2 * bb) << 32 | (ulong)Unsafe.ReadUnaligned<ushort>(p + 3 * bb) << 48;
            ulong hi = Unsafe.ReadUnaligned<ushort>(p + 4 * bb) | (ulong)Unsafe.ReadUnaligned<ushort>(p + 5 * bb) << 16
                | (ulong)Unsafe.ReadUnaligned<ushort>(p + 6 * bb) << 32 | (ulong)Unsafe.ReadUnaligned<ushort>(p + 7 * bb) << 48;
            return Simd.HalfToFloat(Avx2.ConvertToVector256Int32(Vector128.Create(lo, hi).AsUInt16()).AsUInt32());
        }
        Vector256<uint> h = Vector256.Create(
            (uint)Unsafe.ReadUnaligned<ushort>(p), Unsafe.ReadUnaligned<ushort>(p + bb),
            Unsafe.ReadUnaligned<ushort>(p + 2 * bb), Unsafe.ReadUnaligned<ushort>(p + 3 * bb),
            Unsafe.ReadUnaligned<ushort>(p + 4 * bb), Unsafe.ReadUnaligned<ushort>(p + 5 * bb),
            Unsafe.ReadUnaligned<ushort>(p + 6 * bb), Unsafe.ReadUnaligned<ushort>(p + 7 * bb));
        return Simd.HalfToFloat(h);
    }

    /// <summary>
    /// Converts the f16 scales of <paramref name="blocks"/> consecutive blocks to f32 (exact) into ws: once per tile
    /// row instead of once per (x row, block), and 8 at a time where vectors allow.
    /// </summary>
    public static void ConvertScales<TB>(byte* row, int blocks, float* ws) where TB : struct, IQuantBlock
    {
        int bb = TB.BlockBytes;
        int b = 0;
        if (Simd.Tier >= SimdTier.V256)
        {
            for (; b <= blocks - 8; b += 8)
            {
                byte* p = row + b * bb;
                Simd.PrefetchAhead(p, 8 * bb); // the first pass over the tile's rows: see Simd.PrefetchAhead
                Vector256<uint> h = Vector256.Create(
                    (uint)Unsafe.ReadUnaligned<ushort>(p), Unsafe.ReadUnaligned<ushort>(p + bb),
                    Unsafe.ReadUnaligned<ushort>(p + 2 * bb), Unsafe.ReadUnaligned<ushort>(p + 3 * bb),
                    Unsafe.ReadUnaligned<ushort>(p + 4 * bb), Unsafe.ReadUnaligned<ushort>(p + 5 * bb),
                    Unsafe.ReadUnaligned<ushort>(p + 6 * bb), Unsafe.ReadUnaligned<ushort>(p + 7 * bb));
                Simd.HalfToFloat(h).Store(ws + b);
            }
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            for (; b <= blocks - 4; b += 4)
            {
                byte* p = row + b * bb;
                Vector128<uint> h = Vector128.Create(
                    (uint)Unsafe.ReadUnaligned<ushort>(p), Unsafe.ReadUnaligned<ushort>(p + bb),
                    Unsafe.ReadUnaligned<ushort>(p + 2 * bb), Unsafe.ReadUnaligned<ushort>(p + 3 * bb));
                Simd.HalfToFloat(h).Store(ws + b);
            }
        }
        for (; b < blocks; b++)
            ws[b] = TB.Scale(row + b * bb);
    }
}
