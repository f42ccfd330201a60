using System.Buffers.Binary;
using Serving.Abstractions;
using Serving.Conformance.Tests.Cases;

namespace Serving.Conformance.Tests;

/// <summary>
/// Plain scalar float64 definitions of every op of op set v1, written from the specs (GGUF block layouts, the op
/// semantics in IComputeStream) and never from a backend. Deliberately naive: one loop per formula, no SIMD, no
/// reordering tricks, so a reader can check each line against the spec.
/// Legend: T = rows in the step, K = input dim, N = output dim, D = row width, H/Hkv = query/kv heads, Dh = head dim.
/// </summary>
public static class Reference
{
    /// <summary>IEEE 754 binary16 bits → value: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.</summary>
    public static double HalfToDouble(ushort bits)
    {
        int sign = bits >> 15;
        int exponent = (bits >> 10) & 0x1F;
        int mantissa = bits & 0x3FF;
        double magnitude = exponent switch
        {
            0 => mantissa * Math.Pow(2, -24),                               // zero and subnormals: m · 2^-24
            31 => mantissa == 0 ? double.PositiveInfinity : double.NaN,     // inf / NaN
            _ => (1 + mantissa / 1024.0) * Math.Pow(2, exponent - 15),      // normal: 1.m · 2^(e-15)
        };
        return sign == 1 ? -magnitude : magnitude;
    }

    /// <summary>bfloat16 bits → value: the bits are the top half of an IEEE binary32.</summary>
    public static double BFloat16ToDouble(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>
    /// Decodes <paramref name="elements"/> values of <paramref name="type"/> from <paramref name="data"/> (one or more
    /// rows laid out back to back), block by block with the format's decoder in <see cref="WeightFormatCases"/>:
    /// <see cref="F32Element"/>, <see cref="F16Element"/>, <see cref="BF16Element"/>, <see cref="Q8_0Block"/>,
    /// <see cref="Q4_0Block"/>, <see cref="Q5_0Block"/>, <see cref="Q4_KBlock"/>, <see cref="Q5_KBlock"/>, <see cref="Q6_KBlock"/>.
    /// </summary>
    public static double[] Dequantize(DataType type, ReadOnlySpan<byte> data, long elements)
    {
        BlockDecoder decode = WeightFormatCases.Get(type).Decode;
        int blockSize = type.BlockSize(), blockBytes = type.BlockBytes();
        var y = new double[elements];
        for (long b = 0; b < elements / blockSize; b++)
            decode(data.Slice((int)(b * blockBytes), blockBytes), y.AsSpan((int)(b * blockSize), blockSize));
        return y;
    }

    /// <summary>One F32 element: 4 bytes, little-endian IEEE binary32.</summary>
    public static void F32Element(ReadOnlySpan<byte> block, Span<double> y) => y[0] = BinaryPrimitives.ReadSingleLittleEndian(block);

    /// <summary>One F16 element: 2 bytes, little-endian IEEE binary16 (<see cref="HalfToDouble"/>).</summary>
    public static void F16Element(ReadOnlySpan<byte> block, Span<double> y) => y[0] = HalfToDouble(BinaryPrimitives.ReadUInt16LittleEndian(block));

    /// <summary>One BF16 element: 2 bytes, little-endian bfloat16 (<see cref="BFloat16ToDouble"/>).</summary>
    public static void BF16Element(ReadOnlySpan<byte> block, Span<double> y) => y[0] = BFloat16ToDouble(BinaryPrimitives.ReadUInt16LittleEndian(block));

    /// <summary>One Q8_0 block { f16 d; int8 q[32] } → 32 values q·d.</summary>
    public static void Q8_0Block(ReadOnlySpan<byte> block, Span<double> y)
    {
        double d = HalfToDouble(BinaryPrimitives.ReadUInt16LittleEndian(block));
        for (int j = 0; j < 32; j++)
            y[j] = (sbyte)block[2 + j] * d;
    }

    /// <summary>
    /// One Q4_0 block { f16 d; uint8 q[16] } → 32 values: element j &lt; 16 is the low nibble of q[j], element j + 16
    /// its high nibble; value = (nibble − 8)·d.
    /// </summary>
    public static void Q4_0Block(ReadOnlySpan<byte> block, Span<double> y)
    {
        double d = HalfToDouble(BinaryPrimitives.ReadUInt16LittleEndian(block));
        for (int j = 0; j < 16; j++)
        {
            y[j] = ((block[2 + j] & 0x0F) - 8) * d;
            y[j + 16] = ((block[2 + j] >> 4) - 8) * d;
        }
    }

    /// <summary>
    /// One Q4_K super-block { f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128] } → 256 values. Sub-block j (32 elements)
    /// has a 6-bit scale sc_j and 6-bit min m_j: for j &lt; 4, sc_j = scales[j] &amp; 63 and m_j = scales[j + 4] &amp; 63;
    /// for j ≥ 4, sc_j = (scales[j + 4] &amp; 15) | (scales[j − 4] &gt;&gt; 6) &lt;&lt; 4 and
    /// m_j = (scales[j + 4] &gt;&gt; 4) | (scales[j] &gt;&gt; 6) &lt;&lt; 4. Byte qs[32i + l] holds element 64i + l (low nibble,
    /// sub-block 2i) and element 64i + 32 + l (high nibble, sub-block 2i + 1). Value = d·sc_j·q − dmin·m_j.
    /// </summary>
    public static void Q4_KBlock(ReadOnlySpan<byte> block, Span<double> y)
    {
        double d = HalfToDouble(BinaryPrimitives.ReadUInt16LittleEndian(block));
        double dmin = HalfToDouble(BinaryPrimitives.ReadUInt16LittleEndian(block[2..]));
        var scales = block.Slice(4, 12);
        for (int j = 0; j < 8; j++)
        {
            int sc = j < 4 ? scales[j] & 63 : (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4);
            int m = j < 4 ? scales[j + 4] & 63 : (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
            for (int l = 0; l < 32; l++)
            {
                byte packed = block[16 + 32 * (j / 2) + l];
                int q = j % 2 == 0 ? packed & 15 : packed >> 4;
                y[32 * j + l] = d * sc * q - dmin * m;
            }
        }
    }

    /// <summary>
    /// One Q5_0 block { f16 d; uint8 qh[4]; uint8 qs[16] } → 32 values. Element e takes its low 4 bits from qs[e mod 16]
    /// (the low nibble for e &lt; 16, the high nibble otherwise) and its fifth bit from bit e of qh read as a
    /// little-endian uint32, i.e. bit e mod 8 of qh[e / 8]. Value = (q − 16)·d.
    /// </summary>
    public static void Q5_0Block(ReadOnlySpan<byte> block, Span<double> y)
    {
        double d = HalfToDouble(BinaryPrimitives.ReadUInt16LittleEndian(block));
        for (int e = 0; e < 32; e++)
        {
            byte packed = block[6 + e % 16];
            int low = e < 16 ? packed & 15 : packed >> 4;
            int high = (block[2 + e / 8] >> (e % 8)) & 1;
            y[e] = (low + 16 * high - 16) * d;
        }
    }

    /// <summary>
    /// One Q5_K super-block { f16 d; f16 dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128] } → 256 values. Scales and
    /// mins of the 8 sub-blocks of 32 are packed as Q4_K's (<see cref="Q4_KBlock"/>). Element e of sub-block j = e / 32,
    /// at l = e mod 32: low 4 bits from qs[32·(j / 2) + l] (low nibble for even j, high nibble for odd j), fifth bit =
    /// bit j of qh[l]. Value = d·sc_j·q − dmin·m_j.
    /// </summary>
    public static void Q5_KBlock(ReadOnlySpan<byte> block, Span<double> y)
    {
        double d = HalfToDouble(BinaryPrimitives.ReadUInt16LittleEndian(block));
        double dmin = HalfToDouble(BinaryPrimitives.ReadUInt16LittleEndian(block[2..]));
        var scales = block.Slice(4, 12);
        for (int e = 0; e < 256; e++)
        {
            int j = e / 32, l = e % 32;
            int sc = j < 4 ? scales[j] & 63 : (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4);
            int m = j < 4 ? scales[j + 4] & 63 : (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
            byte packed = block[48 + 32 * (j / 2) + l];
            int q = (j % 2 == 0 ? packed & 15 : packed >> 4) + 16 * ((block[16 + l] >> j) & 1);
            y[e] = d * sc * q - dmin * m;
        }
    }

    /// <summary>
    /// One Q6_K super-block { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d } → 256 values. Element e lies in
    /// half h = e / 128 at l = e mod 32 of quarter s = (e mod 128) / 32; its low 4 bits are the low (s &lt; 2) or high
    /// (s ≥ 2) nibble of ql[64h + l + 32·(s mod 2)], its top 2 bits are bits 2s, 2s + 1 of qh[32h + l]. Value =
    /// d·scales[e / 16]·(q − 32).
    /// </summary>
    public static void Q6_KBlock(ReadOnlySpan<byte> block, Span<double> y)
    {
        double d = HalfToDouble(BinaryPrimitives.ReadUInt16LittleEndian(block[208..]));
        for (int e = 0; e < 256; e++)
        {
            int h = e / 128, s = e % 128 / 32, l = e % 32;
            byte low = block[64 * h + l + 32 * (s % 2)];
            int q = (s < 2 ? low & 15 : low >> 4) | (((block[128 + 32 * h + l] >> (2 * s)) & 3) << 4);
            y[e] = d * (sbyte)block[192 + e / 16] * (q - 32);
        }
    }

    /// <summary>y[T, N] = x[T, K] · w[N, K]ᵀ.</summary>
    public static double[] MatMul(double[] x, int t, int k, double[] w, int n)
    {
        var y = new double[t * n];
        for (int r = 0; r < t; r++)
            for (int c = 0; c < n; c++)
            {
                double sum = 0;
                for (int i = 0; i < k; i++) sum += x[r * k + i] * w[c * k + i];
                y[r * n + c] = sum;
            }
        return y;
    }

    /// <summary>output[t, :] = table[ids[t], :]; table [V, D].</summary>
    public static double[] Embed(double[] table, int d, int[] ids)
    {
        var y = new double[ids.Length * d];
        for (int r = 0; r < ids.Length; r++)
            Array.Copy(table, (long)ids[r] * d, y, (long)r * d, d);
        return y;
    }

    /// <summary>y[t, :] = x[t, :] / sqrt(mean(x[t, :]²) + eps) · w; x [T, D], w [D].</summary>
    public static double[] RmsNorm(double[] x, int t, int d, double[] w, double eps)
    {
        var y = new double[t * d];
        for (int r = 0; r < t; r++)
        {
            double sumSquares = 0;
            for (int i = 0; i < d; i++) sumSquares += x[r * d + i] * x[r * d + i];
            double inv = 1 / Math.Sqrt(sumSquares / d + eps);
            for (int i = 0; i < d; i++) y[r * d + i] = x[r * d + i] * inv * w[i];
        }
        return y;
    }

    /// <summary>
    /// Rotary embedding of x [T, H·Dh]: for each head, pairs i in [0, rot/2) rotate by angle pos[t]·invFreq[i];
    /// Normal pairs elements (2i, 2i+1), NeoX pairs (i, i + rot/2); elements from rot to Dh pass through.
    /// </summary>
    public static double[] Rope(double[] x, int t, int heads, int headDim, int rotaryDim, RopeStyle style, int[] positions, double[] invFreq)
    {
        var y = (double[])x.Clone();
        int width = heads * headDim;
        for (int r = 0; r < t; r++)
            for (int h = 0; h < heads; h++)
            {
                int head = r * width + h * headDim;
                for (int i = 0; i < rotaryDim / 2; i++)
                {
                    double angle = positions[r] * invFreq[i];
                    double cos = Math.Cos(angle), sin = Math.Sin(angle);
                    (int a, int b) = style == RopeStyle.Normal ? (2 * i, 2 * i + 1) : (i, i + rotaryDim / 2);
                    double x0 = x[head + a], x1 = x[head + b];
                    y[head + a] = x0 * cos - x1 * sin;
                    y[head + b] = x0 * sin + x1 * cos;
                }
            }
        return y;
    }

    /// <summary>
    /// Paged causal GQA attention. q [T, H·Dh]; kLayer/vLayer [Blocks·BlockSize, Hkv·Dh] (one layer of the cache);
    /// blockTables [S, M]. Row t attends to positions 0..positions[t] of sequence sequence[t]; position p lives in slot
    /// blockTables[seq, p / BlockSize]·BlockSize + p % BlockSize; query head h uses kv head h / (H / Hkv).
    /// </summary>
    public static double[] Attention(double[] q, int t, int heads, int kvHeads, int headDim, double[] kLayer, double[] vLayer,
        int blockSize, int[] blockTables, int maxBlocksPerSequence, int[] positions, int[] sequence, double scale)
    {
        var y = new double[t * heads * headDim];
        int kvWidth = kvHeads * headDim;
        int group = heads / kvHeads;
        for (int r = 0; r < t; r++)
        {
            int n = positions[r] + 1;
            var slots = new int[n];
            for (int p = 0; p < n; p++)
                slots[p] = blockTables[sequence[r] * maxBlocksPerSequence + p / blockSize] * blockSize + p % blockSize;
            for (int h = 0; h < heads; h++)
            {
                int kvOffset = h / group * headDim;
                var logits = new double[n];
                double max = double.NegativeInfinity;
                for (int p = 0; p < n; p++)
                {
                    double dot = 0;
                    for (int i = 0; i < headDim; i++)
                        dot += q[(r * heads + h) * headDim + i] * kLayer[slots[p] * kvWidth + kvOffset + i];
                    logits[p] = scale * dot;
                    max = Math.Max(max, logits[p]);
                }
                double sum = 0;
                for (int p = 0; p < n; p++) { logits[p] = Math.Exp(logits[p] - max); sum += logits[p]; }
                for (int i = 0; i < headDim; i++)
                {
                    double acc = 0;
                    for (int p = 0; p < n; p++) acc += logits[p] * vLayer[slots[p] * kvWidth + kvOffset + i];
                    y[(r * heads + h) * headDim + i] = acc / sum;
                }
            }
        }
        return y;
    }

    /// <summary>silu(gate) · up = gate / (1 + e^−gate) · up, element-wise.</summary>
    public static double[] SwiGlu(double[] gate, double[] up)
    {
        var y = new double[gate.Length];
        for (int i = 0; i < y.Length; i++) y[i] = gate[i] / (1 + Math.Exp(-gate[i])) * up[i];
        return y;
    }

    /// <summary>a + b, element-wise.</summary>
    public static double[] Add(double[] a, double[] b)
    {
        var y = new double[a.Length];
        for (int i = 0; i < y.Length; i++) y[i] = a[i] + b[i];
        return y;
    }

    /// <summary>output[r, :] = source[rows[r], :]; source [T, D].</summary>
    public static double[] Gather(double[] source, int d, int[] rows)
    {
        var y = new double[rows.Length * d];
        for (int r = 0; r < rows.Length; r++)
            for (int i = 0; i < d; i++) y[r * d + i] = source[rows[r] * d + i];
        return y;
    }

    /// <summary>
    /// The values a KV cache of <paramref name="type"/> holds for f32 rows: unchanged for F32; for F16 each value rounded
    /// to the nearest IEEE binary16 (ties to even, overflow to ±∞: .NET's float → Half conversion) and back.
    /// </summary>
    public static float[] CacheValues(DataType type, float[] values)
    {
        if (type == DataType.F32) return (float[])values.Clone();
        if (type != DataType.F16) throw new ArgumentException($"a KV cache is f16 or f32, not {type.Name()}", nameof(type));
        var y = new float[values.Length];
        for (int i = 0; i < y.Length; i++) y[i] = (float)(Half)values[i];
        return y;
    }

    /// <summary>Index of the largest value of each row of x [T, V], the first one on ties.</summary>
    public static int[] Argmax(double[] x, int t, int v)
    {
        var y = new int[t];
        for (int r = 0; r < t; r++)
        {
            int best = 0;
            for (int i = 1; i < v; i++)
                if (x[r * v + i] > x[r * v + best]) best = i;
            y[r] = best;
        }
        return y;
    }
}
