using System.Runtime.Intrinsics;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// The 4 x rows × 2 weight rows register tile of the quantized MatMul (the tile4x2 variants): each weight block is
/// loaded (and unpacked, and its |w| taken) once and used for four x rows, so weight traffic and weight-side work
/// are divided by four. Batch invariance: every (row, col) keeps exactly <see cref="QuantDot.Dot1"/>'s arithmetic —
/// the same exact int32 lanes per block, the same f32 product d_w·d_x, the same fused multiply-add into its own
/// vector accumulator in block order, the same final horizontal sum — only eight such dots run interleaved.
/// </summary>
internal static unsafe class QuantTile
{
    /// <summary>
    /// y[r·yStride + c] = Dot1(W row c, x row r) for r in 0..3, c in 0..1.
    /// w0/w1: weight rows; ws0/ws1: their f32 scales [blocks]; xq: x row 0 quants, row r at xq + r·k;
    /// xd: x row 0 scales [blocks], row r at xd + r·blocks; xdT: the same four rows' scales interleaved [blocks][4].
    /// </summary>
    public static void Run4x2<TB>(byte* w0, byte* w1, float* ws0, float* ws1, sbyte* xq, int k, float* xd, float* xdT,
        int blocks, float* y, int yStride) where TB : struct, IQuantBlock
    {
        if (Simd.Tier >= SimdTier.V256)
        {
            // The 512-bit tier too: see QuantDot.
            Run256<TB>(w0, w1, ws0, ws1, xq, k, xdT, blocks, y, yStride);
            return;
        }
        // Narrow tiers: too few registers for a tile; the plain dots are the same arithmetic.
        for (int r = 0; r < 4; r++)
        {
            y[r * yStride] = QuantDot.Dot1<TB>(w0, ws0, xq + (long)r * k, xd + r * blocks, blocks);
            y[r * yStride + 1] = QuantDot.Dot1<TB>(w1, ws1, xq + (long)r * k, xd + r * blocks, blocks);
        }
    }

    private static void Run256<TB>(byte* w0, byte* w1, float* ws0, float* ws1, sbyte* xq, int k, float* xdT,
        int blocks, float* y, int yStride) where TB : struct, IQuantBlock
    {
        int bb = TB.BlockBytes;
        sbyte* x0 = xq, x1 = xq + k, x2 = xq + 2 * k, x3 = xq + 3 * k;
        // The eight block scales d_w·d_x of one block, computed by one vector multiply (the same f32 products,
        // w-side operand first, as the scalar ws[b]·xd[b]) and reloaded as broadcasts: [c·4 + r].
        float* sc = stackalloc float[8];
        Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default;
        Vector256<float> a20 = default, a21 = default, a30 = default, a31 = default;
        for (int b = 0; b < blocks; b++)
        {
            long o = (long)b * bb;
            Vector256<sbyte> q0 = TB.Quants256(w0 + o), q1 = TB.Quants256(w1 + o);
            Vector256<sbyte> p0 = Int8Dot.Prepare(q0), p1 = Int8Dot.Prepare(q1);
            Vector256<float> wsv = Vector256.Create(Vector128.Create(ws0[b]), Vector128.Create(ws1[b]));
            Vector128<float> xd4 = Vector128.Load(xdT + 4 * b);
            (wsv * Vector256.Create(xd4, xd4)).Store(sc);
            int xo = b * 32;
            Vector256<sbyte> xv = Vector256.Load(x0 + xo);
            a00 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(Int8Dot.Dot(p0, q0, xv)), Vector256.Create(sc[0]), a00);
            a01 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(Int8Dot.Dot(p1, q1, xv)), Vector256.Create(sc[4]), a01);
            xv = Vector256.Load(x1 + xo);
            a10 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(Int8Dot.Dot(p0, q0, xv)), Vector256.Create(sc[1]), a10);
            a11 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(Int8Dot.Dot(p1, q1, xv)), Vector256.Create(sc[5]), a11);
            xv = Vector256.Load(x2 + xo);
            a20 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(Int8Dot.Dot(p0, q0, xv)), Vector256.Create(sc[2]), a20);
            a21 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(Int8Dot.Dot(p1, q1, xv)), Vector256.Create(sc[6]), a21);
            xv = Vector256.Load(x3 + xo);
            a30 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(Int8Dot.Dot(p0, q0, xv)), Vector256.Create(sc[3]), a30);
            a31 = Vector256.MultiplyAddEstimate(Vector256.ConvertToSingle(Int8Dot.Dot(p1, q1, xv)), Vector256.Create(sc[7]), a31);
        }
        y[0] = Vector256.Sum(a00);
        y[1] = Vector256.Sum(a01);
        y += yStride;
        y[0] = Vector256.Sum(a10);
        y[1] = Vector256.Sum(a11);
        y += yStride;
        y[0] = Vector256.Sum(a20);
        y[1] = Vector256.Sum(a21);
        y += yStride;
        y[0] = Vector256.Sum(a30);
        y[1] = Vector256.Sum(a31);
    }
}
