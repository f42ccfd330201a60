using System.Diagnostics;
using System.Globalization;
using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Models;
using Serving.Engine.Tuning.Cases;

namespace Serving.Engine.Tuning;

/// <summary>
/// The autotuner (design §5, docs/tuner.md), driven only through the contract so it runs unchanged on every backend:
/// 1. measures the device: bandwidth with the Copy op on buffers past the last-level cache, and the peak matmul rate
///    at a large batch; 2. for each op at the model's real shapes and batch buckets, validates every variant against a
///    host reference, times the ones that pass and keeps the fastest; 3. loads the model with those kernels and climbs
///    the decode batch on whole-step times (stop on a plateau, on the TPOT target, on the KV-memory cap), then the
///    prefill chunk the same way, giving the scheduler's maximum batch and token budget.
/// </summary>
public static class Tuner
{
    /// <summary>Tunes <paramref name="device"/> for the model at <paramref name="modelPath"/>.</summary>
    /// <param name="device">An opened device.</param>
    /// <param name="modelPath">A GGUF model (only its shape and types matter for step 2; step 3 loads it).</param>
    /// <param name="key">The profile's key (<see cref="ProfileCache.KeyFor"/>).</param>
    /// <param name="options">Mode and policy.</param>
    /// <param name="progress">Where progress goes, or null.</param>
    /// <param name="useMmap">Load the model's weights in place from the mapped file where the device can.</param>
    public static TuningProfile Tune(IAccelerator device, string modelPath, ProfileKey key, TuneOptions options, ITuneProgress? progress = null, bool useMmap = true)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var clock = Stopwatch.StartNew();
        using var file = GgufFile.Open(modelPath);
        var shape = ModelShape.FromGguf(file);
        var counter = new ProgressCounter(progress);
        var phases = new Dictionary<string, double>();
        var lap = Stopwatch.StartNew();
        void Lap(string name)
        {
            phases[name] = Math.Round(lap.Elapsed.TotalSeconds, 3);
            lap.Restart();
        }

        // 1. The device: bandwidth.
        counter.Plan(1);
        counter.Step("bandwidth (Copy op)");
        long bufferBytes = Math.Clamp(options.Fast ? 64L << 20 : 512L << 20, 1L << 20, Math.Max(1L << 20, device.FreeMemoryBytes / 4));
        var bandwidth = BandwidthProbe.Measure(device, bufferBytes, options.Fast ? 5 : 7);
        counter.Done();
        Lap("bandwidth");

        // 2. Kernels per op shape and bucket.
        using var stream = device.CreateStream();
        var phase = Stopwatch.StartNew();
        TimeSpan limit = options.EffectivePhaseLimit;
        var ops = KernelTuner.Tune(stream, shape, options, counter, () => phase.Elapsed > limit);
        var plan = new KernelPlan(ops.SelectMany(o => o.Chosen));
        Lap("kernels");

        // 1b. Peak matmul rate at a large batch.
        var (peak, peakCase) = MeasurePeak(stream, shape, ops, options, counter);
        Lap("peak");

        // 3. Batch limits from whole steps with the chosen kernels.
        long kvPerSequence = shape.Config.KvBytesPerToken(options.KvCacheType) * options.PlanningTokens;
        long kvBudget = device.FreeMemoryBytes / 4; // the share LlamaModel gives its KV cache by default
        int kvCap = (int)Math.Clamp(kvBudget / Math.Max(1, kvPerSequence), 1, 4096);
        int position = options.DecodePosition;
        int maxBatch = Math.Min(options.EffectiveMaxBatch, kvCap);
        string batchLimitReason = maxBatch == kvCap
            ? string.Create(CultureInfo.InvariantCulture, $"the KV-cache memory budget ({kvBudget >> 20} MiB, a quarter of free memory) holds {kvCap} sequences of {options.PlanningTokens} tokens")
            : $"the tuner tries batches up to {maxBatch}";
        int maxChunk = Math.Min(options.EffectiveMaxChunk, Math.Max(16, shape.Config.ContextLength));
        int wanted = maxBatch;
        using var model = LoadForSteps(file, device, shape, plan, options, useMmap, ref maxBatch, maxChunk, position, counter);
        if (maxBatch < wanted) batchLimitReason = $"the device could not hold the model with room for more than {maxBatch} sequences";
        var timer = new StepTimer(model, options.StepBudget);
        Lap("load");

        phase.Restart();
        int decodePlanned = (int)Math.Log2(maxBatch) + 1;
        counter.Plan(decodePlanned);
        var decode = BatchSelector.Climb(b =>
        {
            counter.Step($"decode step, batch {b}");
            var t = timer.Decode(b, position);
            counter.Done();
            return t;
        }, new ClimbPolicy(1, maxBatch, batchLimitReason, options.TpotTargetMs, options.MinGain, limit));
        counter.Done(decodePlanned - decode.Curve.Count);
        Lap("decode");

        phase.Restart();
        int firstChunk = Math.Min(16, maxChunk);
        int chunkPlanned = (int)Math.Log2((double)maxChunk / firstChunk) + 1;
        counter.Plan(chunkPlanned);
        // Fast mode on a slow device: the first chunk alone (warm-up and repeats) would outlast the phase's limit, as
        // estimated from the last decode step (a chunk's rows cost about what as many decode rows do).
        var last = decode.Curve[^1];
        double estimateSeconds = (options.StepBudget.Warmups + options.StepBudget.MinRepeats) * last.Ms / 1000 * firstChunk / last.Batch;
        var prefill = options.Fast && estimateSeconds > limit.TotalSeconds
            ? new ClimbResult([], firstChunk, string.Create(CultureInfo.InvariantCulture,
                $"not measured: timing a {firstChunk}-token chunk would take about {estimateSeconds:0} s, past fast mode's {limit.TotalSeconds:0} s"))
            : BatchSelector.Climb(t =>
            {
                counter.Step($"prefill chunk, {t} tokens");
                var s = timer.Prefill(t);
                counter.Done();
                return s;
            }, new ClimbPolicy(firstChunk, maxChunk, $"the tuner tries chunks up to {maxChunk} tokens", options.TpotTargetMs, options.MinGain, limit, "chunk"));
        counter.Done(chunkPlanned - prefill.Curve.Count);
        Lap("prefill");

        int tokenBudget = decode.Chosen + prefill.Chosen;
        var limits = new BatchLimits(decode.Chosen, decode.Reason, tokenBudget,
            string.Create(CultureInfo.InvariantCulture, $"{decode.Chosen} decode tokens + a prefill chunk of {prefill.Chosen} ({prefill.Reason})"),
            options.TpotTargetMs, kvCap, BatchSelector.MeasuredKnee(decode.Curve),
            BatchSelector.RooflineKnee(peak, bandwidth.BytesPerSecond, shape.BytesPerWeight));
        return new TuningProfile
        {
            Key = key,
            CreatedUtc = DateTime.UtcNow,
            Mode = options.Fast ? "fast" : "full",
            Seconds = clock.Elapsed.TotalSeconds,
            PhaseSeconds = phases,
            BandwidthBytesPerSecond = bandwidth.BytesPerSecond,
            BandwidthSamples = bandwidth.Samples,
            PeakFlopsPerSecond = peak,
            PeakCase = peakCase,
            WeightBytesPerStep = shape.WeightBytesPerStep,
            Ops = ops,
            DecodeCurve = decode.Curve,
            PrefillCurve = prefill.Curve,
            DecodePosition = position,
            Limits = limits,
        };
    }

    /// <summary>
    /// Screens <paramref name="device"/> for <c>--device auto</c>: one untuned batch-1 decode step (default kernels), the
    /// prediction auto compares before it spends a fast tuning on the device that wins. A profile of mode "screen" has no
    /// kernel choices and batch limits of 1; serve and generate never run with one.
    /// </summary>
    public static TuningProfile Screen(IAccelerator device, string modelPath, ProfileKey key, TuneOptions options, bool useMmap = true)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(options);
        var clock = Stopwatch.StartNew();
        using var file = GgufFile.Open(modelPath);
        var shape = ModelShape.FromGguf(file);
        int position = options.DecodePosition, context = (position + 16) / 16 * 16;
        using var model = LlamaModel.Load(file, device, new ModelOptions
        {
            MaxBatchSequences = 1,
            MaxBatchTokens = 16,
            ContextLength = context,
            KvCacheTokens = context,
            UseMmap = useMmap,
            KvCacheType = options.KvCacheType,
        });
        var step = new StepTimer(model, TimingBudget.FastStep).Decode(1, position)
                   ?? throw new InvalidOperationException("the screening step does not fit the model");
        return new TuningProfile
        {
            Key = key,
            CreatedUtc = DateTime.UtcNow,
            Mode = ScreenMode,
            Seconds = clock.Elapsed.TotalSeconds,
            BandwidthBytesPerSecond = 0,
            PeakFlopsPerSecond = 0,
            WeightBytesPerStep = shape.WeightBytesPerStep,
            DecodeCurve = [new StepPoint(1, step)],
            DecodePosition = position,
            Limits = new BatchLimits(1, "screening only: not tuned", 1, "screening only: not tuned", options.TpotTargetMs, 1, null, 0),
        };
    }

    /// <summary>Mode of a screening profile (<see cref="Screen"/>).</summary>
    public const string ScreenMode = "screen";

    /// <summary>
    /// Peak FLOP/s: the best rate of any validated MatMul timing at T ≥ 32 (16 in fast mode) when the kernel phase made
    /// one (full mode reaches T = 256); otherwise the step's largest matrix shape timed at T = 64 (fast mode: 16, default
    /// variant only).
    /// </summary>
    private static (double Peak, string Case) MeasurePeak(IComputeStream stream, ModelShape shape, IReadOnlyList<OpTuning> ops, TuneOptions options, ProgressCounter counter)
    {
        int large = options.Fast ? 16 : 32;
        var measured = ops.Where(o => o.Op == OpKind.MatMul).SelectMany(o => o.Timings.Where(t => t.Batch >= large).Select(t => (Op: o, Timing: t)))
            .OrderByDescending(x => x.Timing.GFlops).Take(1).ToList();
        if (measured.Count > 0)
            return (measured[0].Timing.GFlops * 1e9, $"{measured[0].Op.Title} T={measured[0].Timing.Batch} {measured[0].Timing.Variant}");
        var m = shape.Matrices[0];
        var variants = stream.Device.GetVariants(OpKind.MatMul, m.Type);
        if (options.Fast) variants = variants.Take(1).ToList();
        int t = KernelTuner.MaxRows(options.Fast ? 16 : 64, m.Rows, m.Cols);
        using var c = new MatMulCase(stream.Device, m.Type, m.Rows, m.Cols, t, options.EffectiveRotationBytes, 7);
        var tuning = KernelTuner.TuneCase(stream, c, variants, m.PerStep, m.Role, options with { Buckets = [t] }, counter, () => false);
        var best = tuning.Timings.MaxBy(x => x.GFlops);
        return best is null ? (0, $"{c.Describe()} T={t}: no usable variant")
            : (best.GFlops * 1e9, $"{c.Describe()} T={t} {best.Variant}");
    }

    /// <summary>Loads the model sized for the climbs; halves the batch while the device cannot hold it.</summary>
    private static LlamaModel LoadForSteps(GgufFile file, IAccelerator device, ModelShape shape, KernelPlan plan, TuneOptions options, bool useMmap,
        ref int maxBatch, int maxChunk, int position, ProgressCounter counter)
    {
        counter.Step($"loading the model ({shape.WeightBytesPerStep >> 20} MiB of weights)");
        const int block = 16;
        int context = Math.Max(position + 1, maxChunk);
        context = (context + block - 1) / block * block;
        while (true)
        {
            int blocksPer = position / block + 1;
            try
            {
                return LlamaModel.Load(file, device, new ModelOptions
                {
                    MaxBatchSequences = maxBatch,
                    MaxBatchTokens = Math.Max(maxBatch, maxChunk),
                    ContextLength = context,
                    KvBlockSize = block,
                    KvCacheTokens = Math.Max(maxBatch * blocksPer * block, context),
                    UseMmap = useMmap,
                    KvCacheType = options.KvCacheType,
                    Kernels = plan,
                });
            }
            catch (Exception e) when (maxBatch > 1 && e is AcceleratorException or ArgumentException)
            {
                maxBatch /= 2;
            }
        }
    }
}
