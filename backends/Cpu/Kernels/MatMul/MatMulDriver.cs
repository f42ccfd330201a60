using System.Runtime.Intrinsics;
using Serving.Abstractions;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>Arguments of one MatMul, as raw pointers into validated views. T = x rows, K = input dim, N = output dim.</summary>
internal unsafe struct MatMulJob
{
    /// <summary>x [T, K] f32.</summary>
    public float* X;
    /// <summary>W [N, K] weight rows of <see cref="RowBytes"/> bytes each.</summary>
    public byte* W;
    /// <summary>y [T, N] f32.</summary>
    public float* Y;
    /// <summary>Bytes per weight row.</summary>
    public long RowBytes;
    /// <summary>Rows of x.</summary>
    public int T;
    /// <summary>Input dim.</summary>
    public int K;
    /// <summary>Output dim.</summary>
    public int N;
    /// <summary>True: 4 weight rows per pass (the rows4 variants).</summary>
    public bool Rows4;
    /// <summary>Quantized x quants [T, K] int8 (quantized weight types only).</summary>
    public sbyte* Xq;
    /// <summary>Quantized x scales [T, K/32] f32.</summary>
    public float* Xd;
    /// <summary>Per-worker f32 tiles [Workers][RowsPerTile, K] for converted weights (F16/BF16 with T &gt; 1).</summary>
    public float* Tiles;
    /// <summary>Per-worker f32 weight scales [Workers][RowsPerTile, K/32] (quantized weight types).</summary>
    public float* Scales;
    /// <summary>Tiles of <see cref="RowsPerTile"/> weight rows along N.</summary>
    public int NTiles;
}

/// <summary>
/// The loop machinery of MatMul, shared by every weight type: the work is cut into tiles of 16 weight rows × up to
/// 64 x rows, handed to the worker pool. A tile keeps its weight rows in L1/L2 while it walks its x rows.
/// Reproducibility across batch: each y[t, n] is one dot product whose arithmetic depends only on x[t], W[n], K and
/// the SIMD tier — never on T, on the tile, on the variant or on which worker runs it — because K is never split
/// and the rows4 kernels are bit-identical to the rows1 kernels.
/// </summary>
internal static unsafe class MatMulDriver
{
    /// <summary>Weight rows per tile (a multiple of 4 so rows4 groups never straddle tiles).</summary>
    public const int RowsPerTile = 16;

    /// <summary>x rows per tile.</summary>
    public const int TPerTile = 64;

    /// <summary>Scratch bytes <see cref="Run"/> needs for these shapes with <paramref name="workers"/> workers.</summary>
    public static long ScratchBytes(DataType type, int t, int k, int workers) => type switch
    {
        DataType.Q8_0 or DataType.Q4_0 => Align64((long)t * k) + Align64((long)t * (k / 32) * sizeof(float))
                                          + workers * ScaleTileBytes(k),
        DataType.F16 or DataType.BF16 when t > 1 => (long)workers * Align64((long)RowsPerTile * k * sizeof(float)),
        _ => 0,
    };

    /// <summary>Computes y = x · Wᵀ for the job's weight type; <paramref name="scratch"/> holds at least <see cref="ScratchBytes"/>.</summary>
    public static void Run(WorkerPool pool, DataType type, MatMulJob* job, byte* scratch)
    {
        if (job->T == 0 || job->N == 0)
            return;
        job->NTiles = (job->N + RowsPerTile - 1) / RowsPerTile;
        int tiles = job->NTiles * ((job->T + TPerTile - 1) / TPerTile);
        switch (type)
        {
            case DataType.F32:
                pool.Run(&FloatTile<MatMulF32>, job, tiles);
                break;
            case DataType.F16:
                job->Tiles = (float*)scratch;
                pool.Run(&FloatTile<MatMulF16>, job, tiles);
                break;
            case DataType.BF16:
                job->Tiles = (float*)scratch;
                pool.Run(&FloatTile<MatMulBF16>, job, tiles);
                break;
            case DataType.Q8_0:
                Quantize(pool, job, scratch);
                pool.Run(&QuantTile<MatMulQ8_0>, job, tiles);
                break;
            case DataType.Q4_0:
                Quantize(pool, job, scratch);
                pool.Run(&QuantTile<MatMulQ4_0>, job, tiles);
                break;
            default:
                throw new ArgumentException($"MatMul: no kernel for {type}");
        }
    }

    private static long Align64(long bytes) => (bytes + 63) & ~63L;

    private static long ScaleTileBytes(int k) => Align64((long)RowsPerTile * (k / 32) * sizeof(float));

    private static void Quantize(WorkerPool pool, MatMulJob* job, byte* scratch)
    {
        job->Xq = (sbyte*)scratch;
        job->Xd = (float*)(scratch + Align64((long)job->T * job->K));
        job->Scales = (float*)((byte*)job->Xd + Align64((long)job->T * (job->K / 32) * sizeof(float)));
        // One x row is a few microseconds of work: rows go to the pool only when there are enough to share.
        if (job->T >= 4)
        {
            pool.Run(&QuantizeRow, job, job->T);
        }
        else
        {
            for (int t = 0; t < job->T; t++)
                QuantizeRow(job, t, 0);
        }
    }

    private static void QuantizeRow(void* context, int t, int worker)
    {
        var job = (MatMulJob*)context;
        int k = job->K;
        QuantizeActivations.Row(job->X + (long)t * k, k, job->Xq + (long)t * k, job->Xd + (long)t * (k / 32));
    }

    private static void FloatTile<TL>(void* context, int item, int worker) where TL : struct, IFloatRow
    {
        var job = (MatMulJob*)context;
        int nTile = item % job->NTiles, tTile = item / job->NTiles;
        int n0 = nTile * RowsPerTile, n1 = Math.Min(job->N, n0 + RowsPerTile);
        int t0 = tTile * TPerTile, t1 = Math.Min(job->T, t0 + TPerTile);
        byte* w = job->W + n0 * job->RowBytes;
        if (TL.Converts && t1 - t0 > 1)
        {
            // Convert the tile's rows once (exactly) and reuse them for every x row.
            int k = job->K;
            float* tile = job->Tiles + worker * (Align64((long)RowsPerTile * k * sizeof(float)) / sizeof(float));
            for (int n = n0; n < n1; n++)
                ConvertRow<TL>(w + (n - n0) * job->RowBytes, tile + (long)(n - n0) * k, k);
            FloatRows<MatMulF32>(job, (byte*)tile, (long)k * sizeof(float), n0, n1, t0, t1);
        }
        else
        {
            FloatRows<TL>(job, w, job->RowBytes, n0, n1, t0, t1);
        }
    }

    private static void FloatRows<TL>(MatMulJob* job, byte* w, long rowBytes, int n0, int n1, int t0, int t1) where TL : struct, IFloatRow
    {
        int k = job->K, nAll = job->N;
        for (int t = t0; t < t1; t++)
        {
            float* x = job->X + (long)t * k;
            float* y = job->Y + (long)t * nAll;
            int n = n0;
            if (job->Rows4)
            {
                for (; n <= n1 - 4; n += 4)
                    FloatDot.Dot4<TL>(x, w + (n - n0) * rowBytes, rowBytes, k, y + n);
            }
            for (; n < n1; n++)
                y[n] = FloatDot.Dot1<TL>(x, w + (n - n0) * rowBytes, k);
        }
    }

    /// <summary>Converts k elements of a weight row to f32 (exact).</summary>
    public static void ConvertRow<TL>(byte* src, float* dst, int k) where TL : struct, IFloatRow
    {
        int i = 0;
        if (Simd.Tier == SimdTier.V512)
        {
            for (; i <= k - 16; i += 16)
                TL.Load512(src, i).Store(dst + i);
        }
        else if (Simd.Tier == SimdTier.V256)
        {
            for (; i <= k - 8; i += 8)
                TL.Load256(src, i).Store(dst + i);
        }
        else if (Simd.Tier == SimdTier.V128)
        {
            for (; i <= k - 4; i += 4)
                TL.Load128(src, i).Store(dst + i);
        }
        for (; i < k; i++)
            dst[i] = TL.Load(src, i);
    }

    private static void QuantTile<TB>(void* context, int item, int worker) where TB : struct, IQuantBlock
    {
        var job = (MatMulJob*)context;
        int nTile = item % job->NTiles, tTile = item / job->NTiles;
        int n0 = nTile * RowsPerTile, n1 = Math.Min(job->N, n0 + RowsPerTile);
        int t0 = tTile * TPerTile, t1 = Math.Min(job->T, t0 + TPerTile);
        int k = job->K, blocks = k / 32, nAll = job->N;
        long rowBytes = job->RowBytes;
        float* ws = job->Scales + worker * (ScaleTileBytes(k) / sizeof(float));
        for (int n = n0; n < n1; n++)
            QuantDot.ConvertScales<TB>(job->W + n * rowBytes, blocks, ws + (n - n0) * blocks);
        for (int t = t0; t < t1; t++)
        {
            sbyte* xq = job->Xq + (long)t * k;
            float* xd = job->Xd + (long)t * blocks;
            float* y = job->Y + (long)t * nAll;
            int n = n0;
            if (job->Rows4)
            {
                for (; n <= n1 - 4; n += 4)
                    QuantDot.Dot4<TB>(job->W + n * rowBytes, rowBytes, ws + (n - n0) * blocks, xq, xd, blocks, y + n);
            }
            for (; n < n1; n++)
                y[n] = QuantDot.Dot1<TB>(job->W + n * rowBytes, ws + (n - n0) * blocks, xq, xd, blocks);
        }
    }
}
