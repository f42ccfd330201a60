using Serving.Backends.Cpu.Kernels.Formats;
using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>The inner loop shape of a MatMul variant; all give bit-identical results.</summary>
internal enum MatMulKernel
{
    /// <summary>One (x row, weight row) dot at a time.</summary>
    Rows1,
    /// <summary>One x row against 4 weight rows, sharing each x load.</summary>
    Rows4,
    /// <summary>
    /// Register tiles of several x rows × several weight rows (<see cref="QuantTile"/>, <see cref="FloatTile"/>; for the
    /// K-quants 4 x rows × 1 weight row, <see cref="IKQuant.Dot4x1"/>).
    /// </summary>
    Tile,
}

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
    /// <summary>The variant's inner loop.</summary>
    public MatMulKernel Kernel;
    /// <summary>Run every tile on the calling thread (a <c>_serial</c> variant): no workers woken, no join.</summary>
    public bool Serial;
    /// <summary>Quantized x quants [T, K] int8 (quantized weight types only).</summary>
    public sbyte* Xq;
    /// <summary>Quantized x scales [T, K/32] f32.</summary>
    public float* Xd;
    /// <summary>
    /// The same scales interleaved by groups of 4 rows, [T/4][K/32][4] (tile kernel only): one vector load gives a
    /// block's scale for the 4 rows of a register tile.
    /// </summary>
    public float* XdT;
    /// <summary>
    /// Per x block, xd[b]·Σ xq over the block, [T, K/32] f32 (Q4_K and Q5_K only: their min term needs the block sums of x).
    /// </summary>
    public float* Xs;
    /// <summary>Per-worker f32 tiles [Workers][RowsPerTile, K] for converted weights (F16/BF16 with T &gt; 1).</summary>
    public float* Tiles;
    /// <summary>Per-worker f32 weight scales [Workers][RowsPerTile, K/32] (quantized weight types).</summary>
    public float* Scales;
    /// <summary>Tiles of <see cref="RowsPerTile"/> weight rows along N.</summary>
    public int NTiles;
}

/// <summary>
/// One weight format's way into the MatMul driver (built by <see cref="MatMulDriver.Float{TL}"/>,
/// <see cref="MatMulDriver.Blocks{TB}"/> or <see cref="MatMulDriver.SuperBlocks{TK}"/>): function pointers to generic
/// code specialized for the format, so the choice costs one indirect call per MatMul and none in the loops.
/// </summary>
internal readonly unsafe struct MatMulEntry
{
    /// <summary>Scratch bytes the run needs for (T, K, workers).</summary>
    public readonly delegate*<int, int, int, long> ScratchBytes;

    /// <summary>Runs the job: (pool, job, scratch, tiles, work for the pool's inline test).</summary>
    public readonly delegate*<WorkerPool, MatMulJob*, byte*, int, long, void> Run;

    /// <summary>Pairs the two functions.</summary>
    public MatMulEntry(delegate*<int, int, int, long> scratchBytes, delegate*<WorkerPool, MatMulJob*, byte*, int, long, void> run)
    {
        ScratchBytes = scratchBytes;
        Run = run;
    }
}

/// <summary>
/// The loop machinery of MatMul, shared by every weight type: the work is cut into tiles of 16 weight rows × up to
/// 64 x rows, handed to the worker pool. A tile keeps its weight rows in L1/L2 while it walks its x rows.
/// Reproducibility across batch: each y[t, n] is one dot product whose arithmetic depends only on x[t], W[n], K and
/// the SIMD tier — never on T, on the tile, on the variant or on which worker runs it — because K is never split
/// and the rows4 and register-tile kernels are bit-identical to the rows1 kernels. The tile variants group x rows
/// (4 for quantized weights, 2 for float) so each weight block read serves several rows; rows left over at the
/// end of T use the rows4 kernel. Parallelism is over tiles of weight rows (and of 64 x rows for long prefills):
/// never over K, so which worker computes a value never changes it.
/// </summary>
internal static unsafe class MatMulDriver
{
    /// <summary>Weight rows per tile (a multiple of 4 so rows4 groups never straddle tiles).</summary>
    public const int RowsPerTile = 16;

    /// <summary>x rows per tile.</summary>
    public const int TPerTile = 64;

    /// <summary>
    /// MatMuls of fewer multiply-adds (T·N·K) run on the calling thread. Measured on 2 AVX2 cores: a 288×288 Q8_0
    /// MatMul at T = 1 (83K) takes 5.2 µs inline and 3.8 µs on both cores when the second core is idle (and the same
    /// 5.2 µs when it is busy, since the caller then runs every item itself), so the line sits just below it.
    /// </summary>
    public const long InlineMacs = 64 * 1024;

    /// <summary>The driver's entry for an unquantized format: f32 FMA dots, F16/BF16 tiles converted once when T &gt; 1.</summary>
    public static MatMulEntry Float<TL>() where TL : struct, IFloatRow => new(&FloatScratch<TL>, &RunFloat<TL>);

    /// <summary>The driver's entry for a format of 32-element blocks with an f16 scale: x quantized to q8 once, int8 block dots.</summary>
    public static MatMulEntry Blocks<TB>() where TB : struct, IQuantBlock => new(&BlockScratch, &RunBlocks<TB>);

    /// <summary>The driver's entry for a K-quant (super-blocks of 256): x quantized to q8 once, the format's own dots.</summary>
    public static MatMulEntry SuperBlocks<TK>() where TK : struct, IKQuant => new(&SuperBlockScratch, &RunSuperBlocks<TK>);

    /// <summary>
    /// Computes y = x · Wᵀ with the format's kernels (<paramref name="entry"/>); <paramref name="scratch"/> holds at
    /// least <see cref="MatMulEntry.ScratchBytes"/> for the job's shapes.
    /// </summary>
    public static void Run(WorkerPool pool, in MatMulEntry entry, MatMulJob* job, byte* scratch)
    {
        if (job->T == 0 || job->N == 0)
            return;
        job->NTiles = (job->N + RowsPerTile - 1) / RowsPerTile;
        int tiles = job->NTiles * ((job->T + TPerTile - 1) / TPerTile);
        // As elements for the pool's inline test: 0 below the line keeps the loop on this thread.
        long work = job->Serial || (long)job->T * job->N * job->K < InlineMacs ? 0 : long.MaxValue;
        entry.Run(pool, job, scratch, tiles, work);
    }

    // Converted f32 tiles, one per worker, when T > 1 (F16, BF16).
    private static long FloatScratch<TL>(int t, int k, int workers) where TL : struct, IFloatRow
        => TL.Converts && t > 1 ? workers * Align64((long)RowsPerTile * k * sizeof(float)) : 0;

    private static void RunFloat<TL>(WorkerPool pool, MatMulJob* job, byte* scratch, int tiles, long work) where TL : struct, IFloatRow
    {
        if (TL.Converts)
            job->Tiles = (float*)scratch;
        pool.Run(&FloatItem<TL>, job, tiles, work);
    }

    // xq, xd, the interleaved xdT, and a tile of f32 weight scales per worker.
    private static long BlockScratch(int t, int k, int workers)
        => Align64((long)t * k) + 2 * Align64((long)t * (k / 32) * sizeof(float)) + workers * ScaleTileBytes(k);

    private static void RunBlocks<TB>(WorkerPool pool, MatMulJob* job, byte* scratch, int tiles, long work) where TB : struct, IQuantBlock
    {
        Quantize(pool, job, scratch);
        pool.Run(&QuantItem<TB>, job, tiles, work);
    }

    // xq, xd and xs; K-quant scales are decoded per super-block inside the kernels.
    private static long SuperBlockScratch(int t, int k, int workers)
        => Align64((long)t * k) + 2 * Align64((long)t * (k / 32) * sizeof(float));

    private static void RunSuperBlocks<TK>(WorkerPool pool, MatMulJob* job, byte* scratch, int tiles, long work) where TK : struct, IKQuant
    {
        QuantizeForKQuants(pool, job, scratch, TK.BlockSums);
        pool.Run(&KQuantItem<TK>, job, tiles, work);
    }

    private static long Align64(long bytes) => (bytes + 63) & ~63L;

    private static long ScaleTileBytes(int k) => Align64((long)RowsPerTile * (k / 32) * sizeof(float));

    private static void Quantize(WorkerPool pool, MatMulJob* job, byte* scratch)
    {
        job->Xq = (sbyte*)scratch;
        job->Xd = (float*)(scratch + Align64((long)job->T * job->K));
        long scaleBytes = Align64((long)job->T * (job->K / 32) * sizeof(float));
        job->XdT = (float*)((byte*)job->Xd + scaleBytes);
        job->Scales = (float*)((byte*)job->XdT + scaleBytes);
        // Quantizing is a light pass over x: rows go to the pool only when there are enough elements to share.
        pool.Run(&QuantizeRow, job, job->T, (long)job->T * job->K);
    }

    // The K-quant layout of the same scratch: xq, xd, then xs where Q4_K and Q5_K need it (no interleaved scales, no scale tiles).
    private static void QuantizeForKQuants(WorkerPool pool, MatMulJob* job, byte* scratch, bool blockSums)
    {
        job->Xq = (sbyte*)scratch;
        job->Xd = (float*)(scratch + Align64((long)job->T * job->K));
        job->Xs = blockSums ? (float*)((byte*)job->Xd + Align64((long)job->T * (job->K / 32) * sizeof(float))) : null;
        job->XdT = null;
        pool.Run(&QuantizeRow, job, job->T, (long)job->T * job->K);
    }

    private static void QuantizeRow(void* context, int t, int worker)
    {
        var job = (MatMulJob*)context;
        int k = job->K;
        int blocks = k / 32;
        float* xd = job->Xd + (long)t * blocks;
        sbyte* xq = job->Xq + (long)t * k;
        QuantizeActivations.Row(job->X + (long)t * k, k, xq, xd);
        if (job->Xs != null)
        {
            float* xs = job->Xs + (long)t * blocks;
            for (int b = 0; b < blocks; b++)
            {
                int sum = 0; // exact: |Σ| ≤ 32·127
                for (int i = 0; i < 32; i++)
                    sum += xq[32 * b + i];
                xs[b] = xd[b] * sum;
            }
        }
        if (job->XdT != null && job->Kernel == MatMulKernel.Tile && (t | 3) < job->T)
        {
            // Only rows of complete groups of 4 are tiled; the rest use the per-row kernels and xd.
            float* xdT = job->XdT + (long)(t >> 2) * blocks * 4 + (t & 3);
            for (int b = 0; b < blocks; b++)
                xdT[4 * b] = xd[b];
        }
    }

    private static void FloatItem<TL>(void* context, int item, int worker) where TL : struct, IFloatRow
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
                FloatRow.Convert<TL>(w + (n - n0) * job->RowBytes, tile + (long)(n - n0) * k, k);
            FloatRows<F32Row>(job, (byte*)tile, (long)k * sizeof(float), n0, n1, t0, t1);
        }
        else
        {
            FloatRows<TL>(job, w, job->RowBytes, n0, n1, t0, t1);
        }
    }

    private static void FloatRows<TL>(MatMulJob* job, byte* w, long rowBytes, int n0, int n1, int t0, int t1) where TL : struct, IFloatRow
    {
        int k = job->K, nAll = job->N;
        int t = t0;
        if (job->Kernel == MatMulKernel.Tile)
        {
            for (; t <= t1 - 2; t += 2)
            {
                float* x = job->X + (long)t * k;
                float* y = job->Y + (long)t * nAll;
                int n = n0;
                for (; n <= n1 - 2; n += 2)
                    FloatTile.Run2x2<TL>(x, w + (n - n0) * rowBytes, rowBytes, k, y + n, nAll);
                for (; n < n1; n++)
                {
                    y[n] = FloatDot.Dot1<TL>(x, w + (n - n0) * rowBytes, k);
                    y[nAll + n] = FloatDot.Dot1<TL>(x + k, w + (n - n0) * rowBytes, k);
                }
            }
        }
        for (; t < t1; t++)
        {
            float* x = job->X + (long)t * k;
            float* y = job->Y + (long)t * nAll;
            int n = n0;
            if (job->Kernel != MatMulKernel.Rows1)
            {
                for (; n <= n1 - 4; n += 4)
                    FloatDot.Dot4<TL>(x, w + (n - n0) * rowBytes, rowBytes, k, y + n);
            }
            for (; n < n1; n++)
                y[n] = FloatDot.Dot1<TL>(x, w + (n - n0) * rowBytes, k);
        }
    }

    private static void QuantItem<TB>(void* context, int item, int worker) where TB : struct, IQuantBlock
    {
        var job = (MatMulJob*)context;
        int nTile = item % job->NTiles, tTile = item / job->NTiles;
        int n0 = nTile * RowsPerTile, n1 = Math.Min(job->N, n0 + RowsPerTile);
        int t0 = tTile * TPerTile, t1 = Math.Min(job->T, t0 + TPerTile);
        int k = job->K, blocks = k / 32, nAll = job->N;
        long rowBytes = job->RowBytes;
        float* ws = job->Scales + worker * (ScaleTileBytes(k) / sizeof(float));
        if (t1 - t0 == 1 && job->Kernel != MatMulKernel.Rows1)
        {
            // One x row (decode): each weight block is read once, so its scale is converted where it is used.
            float* y1 = job->Y + (long)t0 * nAll;
            sbyte* xq1 = job->Xq + (long)t0 * k;
            float* xd1 = job->Xd + (long)t0 * blocks;
            int n = n0;
            for (; n <= n1 - 4; n += 4)
                QuantDot.Dot4Streaming<TB>(job->W + n * rowBytes, rowBytes, ws, xq1, xd1, blocks, y1 + n);
            for (; n < n1; n++)
            {
                QuantDot.ConvertScales<TB>(job->W + n * rowBytes, blocks, ws);
                y1[n] = QuantDot.Dot1<TB>(job->W + n * rowBytes, ws, xq1, xd1, blocks);
            }
            return;
        }
        for (int n = n0; n < n1; n++)
            QuantDot.ConvertScales<TB>(job->W + n * rowBytes, blocks, ws + (n - n0) * blocks);
        int t = t0;
        if (job->Kernel == MatMulKernel.Tile)
        {
            // t0 is a multiple of TPerTile, so these groups are the groups of 4 that XdT holds.
            for (; t <= t1 - 4; t += 4)
            {
                sbyte* xq = job->Xq + (long)t * k;
                float* xd = job->Xd + (long)t * blocks;
                float* xdT = job->XdT + (long)t * blocks;
                float* y = job->Y + (long)t * nAll;
                int n = n0;
                for (; n <= n1 - 2; n += 2)
                {
                    QuantTile.Run4x2<TB>(job->W + n * rowBytes, job->W + (n + 1) * rowBytes, ws + (n - n0) * blocks,
                        ws + (n + 1 - n0) * blocks, xq, k, xd, xdT, blocks, y + n, nAll);
                }
                for (; n < n1; n++)
                {
                    for (int r = 0; r < 4; r++)
                        y[r * nAll + n] = QuantDot.Dot1<TB>(job->W + n * rowBytes, ws + (n - n0) * blocks, xq + (long)r * k, xd + r * blocks, blocks);
                }
            }
        }
        for (; t < t1; t++)
        {
            sbyte* xq = job->Xq + (long)t * k;
            float* xd = job->Xd + (long)t * blocks;
            float* y = job->Y + (long)t * nAll;
            int n = n0;
            if (job->Kernel != MatMulKernel.Rows1)
            {
                for (; n <= n1 - 4; n += 4)
                    QuantDot.Dot4<TB>(job->W + n * rowBytes, rowBytes, ws + (n - n0) * blocks, xq, xd, blocks, y + n);
            }
            for (; n < n1; n++)
                y[n] = QuantDot.Dot1<TB>(job->W + n * rowBytes, ws + (n - n0) * blocks, xq, xd, blocks);
        }
    }

    /// <summary>
    /// One tile of a K-quant MatMul: groups of 4 x rows through <see cref="IKQuant.Dot4x1"/> (tile kernel), the rest
    /// (and every row for the rows1 kernel) through <see cref="IKQuant.Dot1"/> — bit-identical per row.
    /// </summary>
    private static void KQuantItem<TK>(void* context, int item, int worker) where TK : struct, IKQuant
    {
        var job = (MatMulJob*)context;
        int nTile = item % job->NTiles, tTile = item / job->NTiles;
        int n0 = nTile * RowsPerTile, n1 = Math.Min(job->N, n0 + RowsPerTile);
        int t0 = tTile * TPerTile, t1 = Math.Min(job->T, t0 + TPerTile);
        int k = job->K, blocks = k / 32, superBlocks = k / 256, nAll = job->N;
        long rowBytes = job->RowBytes;
        int t = t0;
        if (job->Kernel == MatMulKernel.Tile)
        {
            for (; t <= t1 - 4; t += 4)
            {
                sbyte* xq = job->Xq + (long)t * k;
                float* xd = job->Xd + (long)t * blocks, xs = job->Xs + (long)t * blocks;
                float* y = job->Y + (long)t * nAll;
                for (int n = n0; n < n1; n++)
                    TK.Dot4x1(job->W + n * rowBytes, xq, xd, xs, k, y + n, nAll);
            }
        }
        for (; t < t1; t++)
        {
            sbyte* xq = job->Xq + (long)t * k;
            float* xd = job->Xd + (long)t * blocks, xs = job->Xs + (long)t * blocks;
            float* y = job->Y + (long)t * nAll;
            for (int n = n0; n < n1; n++)
                y[n] = TK.Dot1(job->W + n * rowBytes, xq, xd, xs, superBlocks);
        }
    }
}
