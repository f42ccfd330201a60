using System.Diagnostics;
using Serving.Abstractions;
using Serving.Engine.Energy;
using Serving.Engine.Models;
using Serving.Engine.Tuning;
using Serving.Host.Plugins;

namespace Serving.Host.Benchmarks.Suite;

/// <summary>
/// The <c>bench</c> suite (docs/bench.md): on each device, the same workload — prompt processing (pp: one sequence of
/// <see cref="SuiteOptions.Prompt"/> tokens) and decode at each batch size (tg: B sequences generating
/// <see cref="SuiteOptions.Gen"/> tokens each from an empty context, greedy) — timed over repetitions, next to the
/// floors set by the device's measured bandwidth and MatMul throughput, with energy where a meter exists, and device
/// time per op of a decode step. The model is driven directly (no scheduler, no sampling on the host), as llama-bench
/// drives llama.cpp.
/// </summary>
internal sealed class BenchSuite(SuiteOptions options, DeviceRegistry registry, Action<string>? status = null, Action? step = null)
{
    /// <summary>Progress units one device takes (for the bar's total).</summary>
    public int UnitsPerDevice => 4 + options.Repetitions * (1 + options.Batches.Count) + 1;

    /// <summary>Runs every device; a device that fails is recorded with its error and the run goes on.</summary>
    public SuiteResults Run()
    {
        var created = DateTimeOffset.UtcNow;
        ModelFacts? model = null;
        IEnergyMeter? external = OpenExternal();
        var devices = new List<DeviceResults>();
        foreach (string id in options.Devices)
        {
            var (result, facts) = RunDevice(id, external);
            model ??= facts;
            devices.Add(result);
        }
        return new SuiteResults
        {
            Created = created,
            CommandLine = options.CommandLine,
            Git = RunFacts.Git(),
            Host = RunFacts.Host(),
            Settings = new SuiteSettings(options.Prompt, options.Gen, [.. options.Batches], options.Repetitions, options.KvType, options.Threads, options.BandwidthBytes),
            Model = model ?? RunFacts.ModelFromFile(options.ModelPath, options.Shape),
            ExternalMeter = external is null ? null : new MeterFacts(external.Source, Kind(external.Kind)),
            Devices = devices,
        };
    }

    private IEnergyMeter? OpenExternal()
    {
        if (options.PowerCommand is { } cmd) return ExternalMeter.FromCommand(cmd, TimeSpan.FromSeconds(10));
        if (options.PowerFile is { } file) return ExternalMeter.FromFile(file);
        return null;
    }

    private static string Kind(EnergyMeterKind kind) => kind == EnergyMeterKind.Counter ? "counter" : "power samples";

    private void Status(string text) => status?.Invoke(text);

    private void Step() => step?.Invoke();

    private (DeviceResults Result, ModelFacts? Model) RunDevice(string id, IEnergyMeter? external)
    {
        IAccelerator device;
        Status($"{id}: opening");
        try
        {
            device = registry.Open(id, new DeviceOptions(options.Threads));
        }
        catch (Exception e) when (e is DeviceNotFoundException or AcceleratorException or NotSupportedException)
        {
            for (int i = 0; i < UnitsPerDevice; i++) Step();
            return (new DeviceResults { Id = id, Error = e.Message, Meter = null }, null);
        }
        using (device)
        {
            var d = device.Descriptor;
            var meter = device.EnergyMeter;
            var result = new DeviceResults
            {
                Id = d.Id,
                Name = d.Name,
                Vendor = d.Vendor,
                Kind = d.Kind.ToString(),
                DriverVersion = d.DriverVersion,
                Fingerprint = d.Fingerprint,
                TotalMemoryBytes = d.TotalMemoryBytes,
                Details = d.Details,
                TunerProfile = null,
                TunerNote = "none: bench runs every op's default kernel variant and does not apply tuner profiles yet (docs/tuner.md)",
                Meter = meter is null ? null : new MeterFacts(meter.Source, Kind(meter.Kind)),
            };
            try
            {
                var facts = Measure(device, result, external);
                return (result, facts);
            }
            catch (Exception e) when (e is AcceleratorException or ModelLoadException or ArgumentException or InvalidOperationException or NotSupportedException or IOException)
            {
                result.Error = $"{e.GetType().Name}: {e.Message}";
                return (result, null);
            }
        }
    }

    private ModelFacts Measure(IAccelerator device, DeviceResults result, IEnergyMeter? external)
    {
        string id = device.Descriptor.Id;
        Status($"{id}: bandwidth");
        var bw = BandwidthProbe.Measure(device, options.BandwidthBytes);
        // A roof is the best the device showed, so the peaks are the best sample (all are kept): on a busy machine a
        // median roof would sit below what the tests themselves reach.
        var bandwidth = new Peak(bw.Samples.Max() / 1e9, [.. bw.Samples.Select(s => s / 1e9)], $"Copy op, {bw.BufferBytes >> 20} MiB buffers, read + written bytes, best of {bw.Samples.Count}");
        Step();

        var profiler = new OpProfiler(device);
        int maxBatch = options.Batches.Max();
        int chunk = Math.Min(options.Prompt, 512);
        int context = Math.Max(options.Prompt, options.Gen) + 1;
        int blockSize = 16;
        int blocksPerSeq = (context + blockSize - 1) / blockSize;
        Status($"{id}: loading {Path.GetFileName(options.ModelPath)}");
        using var lm = LoadedModel.Open(options.ModelPath, profiler, new ModelOptions
        {
            MaxBatchSequences = maxBatch,
            MaxBatchTokens = Math.Max(chunk, maxBatch),
            ContextLength = blocksPerSeq * blockSize,
            KvCacheTokens = Math.Max(1, maxBatch) * blocksPerSeq * blockSize,
            KvBlockSize = blockSize,
            UseMmap = false,
            KvCacheType = options.KvType == "f32" ? DataType.F32 : DataType.F16,
        });
        var m = lm.Model;
        var facts = RunFacts.Model(lm, options.Shape);
        Step();

        var weightType = lm.File.FindTensor("blk.0.attn_q.weight")?.Type ?? DataType.F32;
        Status($"{id}: MatMul peak ({weightType.Name()})");
        var cp = ComputeProbe.Measure(device, weightType);
        var compute = new Peak(cp.Samples.Max() / 1e9, [.. cp.Samples.Select(s => s / 1e9)], $"MatMul {weightType.Name()} T={cp.Rows} N={cp.N} K={cp.K}, best of {cp.Samples.Count}");
        Step();
        var runner = new Runner(m, chunk, blocksPerSeq);

        Status($"{id}: warm-up");
        runner.Prompt(Math.Min(options.Prompt, 32));
        foreach (int b in options.Batches) runner.Decode(b, Math.Min(options.Gen, 2));
        Step();

        var meters = new List<IEnergyMeter>();
        if (device.EnergyMeter is { } dm) meters.Add(dm);
        if (external is not null) meters.Add(external);
        using var sampler = new EnergySampler(meters, TimeSpan.FromMilliseconds(50),
            external is null ? null : new HashSet<IEnergyMeter> { external }, options.PowerInterval);
        var intervals = new Dictionary<string, List<(double Start, double End, double Seconds)>>();
        var order = new List<(string Name, string Kind, int Batch, long Tokens, int Steps)>();
        string pp = $"pp{options.Prompt}", tg = $"tg{options.Gen}";
        order.Add((pp, "prompt", 1, options.Prompt, (options.Prompt + chunk - 1) / chunk));
        foreach (int b in options.Batches) order.Add(($"{tg}@{b}", "decode", b, (long)b * options.Gen, options.Gen));
        foreach (var o in order) intervals[o.Name] = [];

        for (int rep = 0; rep < options.Repetitions; rep++)
        {
            foreach (var o in order)
            {
                Status($"{id}: {o.Name} rep {rep + 1}/{options.Repetitions}");
                sampler.Mark();
                double start = sampler.Now;
                long t0 = Stopwatch.GetTimestamp();
                if (o.Kind == "prompt") runner.Prompt(options.Prompt);
                else runner.Decode(o.Batch, options.Gen);
                double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                double end = sampler.Now;
                sampler.Mark();
                intervals[o.Name].Add((start, end, seconds));
                Step();
            }
        }
        if (external is not null)
        {
            Status($"{id}: waiting for the external meter's next reading");
            sampler.WaitForReadingAfter(sampler.Now, 3 * options.PowerInterval + TimeSpan.FromSeconds(10));
        }

        Status($"{id}: op profile");
        result.Ops = Profile(profiler, runner);
        Step();

        result.Bandwidth = bandwidth;
        result.Compute = compute;
        IEnergyMeter[] deviceMeters = device.EnergyMeter is { } x ? [x] : [];
        IEnergyMeter[] systemMeters = external is null ? [] : [external];
        foreach (var o in order)
        {
            var samples = new List<Sample>();
            foreach (var (start, end, seconds) in intervals[o.Name])
            {
                var de = sampler.Measure(deviceMeters, start, end);
                var se = sampler.Measure(systemMeters, start, end);
                samples.Add(new Sample(seconds, o.Tokens / seconds,
                    de.Joules, deviceMeters.Length > 0 ? de.Missing : null, de.Parts.Sum(p => p.Reads),
                    se.Joules, systemMeters.Length > 0 ? se.Missing : null));
            }
            result.Tests.Add(Summarize(o.Name, o.Kind, o.Batch, o.Tokens, o.Steps, samples, facts, m.WeightBytes, bandwidth.Value, compute.Value,
                deviceMeters.Length > 0 ? EnergyReading.Label(deviceMeters.Select(z => z.Kind)) : "not measured"));
        }
        return facts;
    }

    private OpProfile Profile(OpProfiler profiler, Runner runner)
    {
        int steps = Math.Min(options.ProfileSteps, options.Gen);
        if (steps <= 0) return new OpProfile(1, 0, 0, [], "not profiled (--profile-steps 0)");
        profiler.Enabled = true;
        runner.Decode(1, 1); // the first timed step warms whatever timing adds
        profiler.Reset();
        runner.Decode(1, steps);
        profiler.Enabled = false;
        if (profiler.Failure is { } why) return new OpProfile(1, 0, 0, [], $"no device timestamps: {why}");
        var totals = profiler.Totals();
        double stepMs = totals.Sum(t => t.Seconds) * 1000 / steps;
        return new OpProfile(1, steps, stepMs, [.. totals.Select(t => new OpShare(t.Op, t.Seconds * 1000 / steps, (double)t.Count / steps))], null);
    }

    /// <summary>The statistics of one test's repetitions, against the device's floors.</summary>
    internal static TestResult Summarize(string name, string kind, int batch, long tokens, int steps, List<Sample> samples, ModelFacts model,
        long weightBytes, double bandwidthGBps, double computeGFlops, string energyMethod)
    {
        double flops = kind == "prompt" ? RunFacts.PromptFlops(model, (int)tokens) : RunFacts.DecodeFlops(model, batch, steps);
        double bytes = (double)weightBytes * steps;
        double floorSeconds = Math.Max(bytes / (bandwidthGBps * 1e9), flops / (computeGFlops * 1e9));
        var tps = Stat.Of(samples.Select(s => s.TokensPerSecond));
        double perSeqTokens = (double)tokens / batch;
        var joules = samples.Where(s => s.Joules is not null).ToList();
        var sys = samples.Where(s => s.SystemJoules is not null).ToList();
        return new TestResult
        {
            Name = name,
            Kind = kind,
            Batch = batch,
            Tokens = tokens,
            Steps = steps,
            Flops = flops,
            Bytes = bytes,
            Samples = samples,
            TokensPerSecond = tps,
            TokensPerSecondPerSequence = Stat.Of(samples.Select(s => perSeqTokens / s.Seconds)),
            MsPerToken = Stat.Of(samples.Select(s => s.Seconds * 1000 / perSeqTokens)),
            AchievedGBps = Stat.Of(samples.Select(s => bytes / s.Seconds / 1e9)),
            AchievedGFlops = Stat.Of(samples.Select(s => flops / s.Seconds / 1e9)),
            FloorTokensPerSecond = floorSeconds > 0 ? tokens / floorSeconds : null,
            FloorBound = bytes / (bandwidthGBps * 1e9) >= flops / (computeGFlops * 1e9) ? "bandwidth" : "compute",
            OfFloor = floorSeconds > 0 && tps is not null ? tps.Mean / (tokens / floorSeconds) : null,
            EnergyMethod = energyMethod,
            // Only repetitions the meter measured count; all of them when it measured every one.
            JoulesPerToken = Stat.Of(joules.Select(s => s.Joules!.Value / tokens)),
            Watts = Stat.Of(joules.Select(s => s.Joules!.Value / s.Seconds)),
            TokensPerJoule = Stat.Of(joules.Where(s => s.Joules > 0).Select(s => tokens / s.Joules!.Value)),
            SystemJoulesPerToken = Stat.Of(sys.Select(s => s.SystemJoules!.Value / tokens)),
            SystemWatts = Stat.Of(sys.Select(s => s.SystemJoules!.Value / s.Seconds)),
            SystemTokensPerJoule = Stat.Of(sys.Where(s => s.SystemJoules > 0).Select(s => tokens / s.SystemJoules!.Value)),
        };
    }

    /// <summary>Drives the model: prompt chunks of one sequence, and decode steps of B sequences in their own blocks.</summary>
    internal sealed class Runner(LlamaModel model, int chunk, int blocksPerSeq)
    {
        private readonly StepBatch _batch = new(model.MaxBatchTokens, model.MaxBatchSequences, model.MaxBlocksPerSequence);
        private readonly int[] _greedy = new int[Math.Max(model.MaxBatchTokens, model.MaxBatchSequences)];
        private readonly int[] _tokens = new int[model.MaxBatchSequences];

        private void Tables(int sequences)
        {
            for (int s = 0; s < sequences; s++)
                for (int k = 0; k < blocksPerSeq; k++)
                    _batch.BlockTables[s * _batch.MaxBlocksPerSequence + k] = s * blocksPerSeq + k;
        }

        private int Slot(int sequence, int position) =>
            (sequence * blocksPerSeq + position / model.KvBlockSize) * model.KvBlockSize + position % model.KvBlockSize;

        /// <summary>One sequence of <paramref name="tokens"/> prompt tokens (fixed pseudo-random ids) in chunks; the
        /// last token's argmax comes back, which waits for the whole prefill.</summary>
        public void Prompt(int tokens)
        {
            var rng = new Random(tokens);
            for (int start = 0; start < tokens; start += chunk)
            {
                int n = Math.Min(chunk, tokens - start);
                _batch.Clear();
                _batch.SequenceCount = 1;
                Tables(1);
                for (int i = 0; i < n; i++)
                {
                    int pos = start + i;
                    bool last = pos == tokens - 1;
                    _batch.AddToken(rng.Next(3, model.VocabSize), pos, 0, Slot(0, pos), wantLogits: last, greedy: last);
                }
                model.Forward(_batch, Span<float>.Empty, _greedy);
            }
        }

        /// <summary><paramref name="sequences"/> sequences decoding <paramref name="steps"/> tokens each from position 0,
        /// each step's input the previous step's greedy output.</summary>
        public void Decode(int sequences, int steps)
        {
            for (int s = 0; s < sequences; s++) _tokens[s] = 1 + s;
            for (int pos = 0; pos < steps; pos++)
            {
                _batch.Clear();
                _batch.SequenceCount = sequences;
                Tables(sequences);
                for (int s = 0; s < sequences; s++) _batch.AddToken(_tokens[s], pos, s, Slot(s, pos), wantLogits: true, greedy: true);
                model.Forward(_batch, Span<float>.Empty, _greedy);
                for (int s = 0; s < sequences; s++) _tokens[s] = _greedy[s];
            }
        }
    }
}
