using System.Text.Json.Serialization;
using Serving.Abstractions;

namespace Serving.Engine.Tuning;

/// <summary>What validating one variant of one op shape found, and whether the tuner may choose it.</summary>
/// <param name="Variant">Variant name.</param>
/// <param name="Description">The backend's one line on it.</param>
/// <param name="IsDefault">True for the device's default (first) variant.</param>
/// <param name="BatchInvariant">As the variant declares.</param>
/// <param name="AppliesTo">Its shapes, as text.</param>
/// <param name="Usable">True when it passed validation and the stream may run it: only then is it timed and may be chosen.</param>
/// <param name="Error">Largest normalized error against the host reference (NaN when not run).</param>
/// <param name="Limit">Tolerance.</param>
/// <param name="BitIdenticalToDefault">Output equal to the default's bit for bit (null: not compared).</param>
/// <param name="Status">"ok", or why it is not usable ("rejected: wrong result at T = 1 …", "skipped: not batch-invariant …").</param>
public sealed record VariantCheck(string Variant, string Description, bool IsDefault, bool BatchInvariant, string AppliesTo,
    bool Usable, double Error, double Limit, bool? BitIdenticalToDefault, string Status);

/// <summary>One variant timed at one batch bucket (every timing is kept, not only winners).</summary>
/// <param name="Variant">Variant name.</param>
/// <param name="Batch">T, rows of the call.</param>
/// <param name="Time">Device time per call, µs.</param>
/// <param name="Bytes">Bytes the call moves at least once (weights + activations).</param>
/// <param name="Flops">Floating-point operations of the call (0 for ops where they do not matter).</param>
public sealed record VariantTiming(string Variant, int Batch, TimingStats Time, long Bytes, double Flops)
{
    /// <summary>Achieved GB/s (10⁹ bytes/s) at the median.</summary>
    public double GBps => Time.MedianUs > 0 ? Bytes / Time.MedianUs / 1e3 : 0;

    /// <summary>Achieved GFLOP/s at the median.</summary>
    public double GFlops => Time.MedianUs > 0 ? Flops / Time.MedianUs / 1e3 : 0;
}

/// <summary>The variant chosen for one (op, type, shape, batch bucket).</summary>
/// <param name="Op">Op.</param>
/// <param name="Type">Weight type (MatMul) or F32.</param>
/// <param name="Rows">N (MatMul) or 0.</param>
/// <param name="Cols">K (MatMul) or the row width.</param>
/// <param name="Batch">Bucket: used for calls with at least this many rows, up to the next bucket.</param>
/// <param name="Variant">Chosen variant's name.</param>
public sealed record KernelChoice(OpKind Op, DataType Type, int Rows, int Cols, int Batch, string Variant);

/// <summary>Every measurement of one op at one of the model's shapes.</summary>
/// <param name="Op">Op.</param>
/// <param name="Type">Weight type (MatMul) or F32.</param>
/// <param name="Rows">N (MatMul) or 0.</param>
/// <param name="Cols">K (MatMul) or the row width.</param>
/// <param name="PerStep">How many such calls one decode step makes.</param>
/// <param name="Role">Which tensors ("ffn_gate, ffn_up").</param>
/// <param name="Checks">Validation of every variant.</param>
/// <param name="Timings">Every timing.</param>
/// <param name="Chosen">The winner per bucket.</param>
/// <param name="Note">Why something was not measured (time limit), or empty.</param>
public sealed record OpTuning(OpKind Op, DataType Type, int Rows, int Cols, int PerStep, string Role,
    IReadOnlyList<VariantCheck> Checks, IReadOnlyList<VariantTiming> Timings, IReadOnlyList<KernelChoice> Chosen, string Note)
{
    /// <summary>"MatMul q4_0 [8192, 2048]".</summary>
    public string Title => Op == OpKind.MatMul ? $"{Op} {Type.Name()} [{Rows}, {Cols}]" : $"{Op} width {Cols}";
}

/// <summary>One point of a step-time curve: a whole forward step with <paramref name="Batch"/> sequences (decode) or tokens (prefill).</summary>
/// <param name="Batch">Sequences decoding one token each, or tokens of one prefill chunk.</param>
/// <param name="Time">Host time of the step (it synchronizes at its end), µs.</param>
public sealed record StepPoint(int Batch, TimingStats Time)
{
    /// <summary>Median step time, ms.</summary>
    public double Ms => Time.MedianUs / 1000;

    /// <summary>Tokens per second the step gives (Batch / step time).</summary>
    public double TokensPerSecond => Time.MedianUs > 0 ? Batch * 1e6 / Time.MedianUs : 0;
}

/// <summary>The serving batch limits the tuner chose, and why.</summary>
/// <param name="MaxBatch">Most sequences per step (the scheduler's and the model's maximum batch).</param>
/// <param name="BatchReason">Why that many.</param>
/// <param name="TokenBudget">Most tokens per step (decodes plus a prefill chunk).</param>
/// <param name="TokenReason">Why that many.</param>
/// <param name="TpotTargetMs">The per-token latency target the choice respected (0 = none).</param>
/// <param name="KvCap">Most sequences the KV-cache memory budget holds at the planning length.</param>
/// <param name="MeasuredKnee">Batch where the measured step time leaves its batch-1 level (null: not reached within the curve).</param>
/// <param name="RooflineKnee">The roofline's prediction: peak FLOP/s ÷ bandwidth × bytes per weight ÷ 2.</param>
public sealed record BatchLimits(int MaxBatch, string BatchReason, int TokenBudget, string TokenReason, double TpotTargetMs, int KvCap,
    double? MeasuredKnee, double RooflineKnee);

/// <summary>Who a profile is for. Equal keys → the profile applies; any field differing → it does not.</summary>
/// <param name="Backend">Backend name.</param>
/// <param name="DeviceId">backend:index (informative; not part of the identity: the fingerprint is).</param>
/// <param name="DeviceName">Device name (informative).</param>
/// <param name="Fingerprint">The device's stable fingerprint.</param>
/// <param name="DriverVersion">Driver or runtime version.</param>
/// <param name="BackendVersion">Backend assembly version and build id.</param>
/// <param name="Options">Device options that change results ("threads=0 reproducible=true").</param>
/// <param name="Model">The model shape's canonical text (<see cref="ModelShape.Key"/>).</param>
public sealed record ProfileKey(string Backend, string DeviceId, string DeviceName, string Fingerprint, string DriverVersion,
    string BackendVersion, string Options, string Model)
{
    /// <summary>The fields that decide whether a profile applies, as one line (the name of the cache file hashes it).</summary>
    [JsonIgnore]
    public string Identity => $"tuner {TuningProfile.FormatVersion}|{Backend}|{Fingerprint}|{DriverVersion}|{BackendVersion}|{Options}|{Model}";
}

/// <summary>
/// Everything one tuning run measured and decided for one device and model shape (docs/tuner.md): bandwidth, peak
/// matmul rate, every variant's validation and timings per op shape and batch bucket, the chosen variants, the
/// step-time curves and the batch limits. Stored as JSON in the profile cache; <c>tune --json</c> writes the same.
/// </summary>
public sealed record TuningProfile
{
    /// <summary>Version of this file's layout; a file with another is ignored (stale).</summary>
    public const int FormatVersion = 1;

    /// <summary>Layout version of this profile.</summary>
    public int Format { get; init; } = FormatVersion;

    /// <summary>Who it is for.</summary>
    public required ProfileKey Key { get; init; }

    /// <summary>When it was measured (UTC).</summary>
    public required DateTime CreatedUtc { get; init; }

    /// <summary>"fast" or "full".</summary>
    public required string Mode { get; init; }

    /// <summary>Seconds the tuning took.</summary>
    public double Seconds { get; init; }

    /// <summary>Wall seconds of each phase (bandwidth, kernels, peak, load, decode, prefill).</summary>
    public IReadOnlyDictionary<string, double> PhaseSeconds { get; init; } = new Dictionary<string, double>();

    /// <summary>Measured memory bandwidth, bytes/s (the Copy op).</summary>
    public required double BandwidthBytesPerSecond { get; init; }

    /// <summary>Every bandwidth sample, bytes/s.</summary>
    public IReadOnlyList<double> BandwidthSamples { get; init; } = [];

    /// <summary>Peak matmul rate measured at a large batch, FLOP/s.</summary>
    public required double PeakFlopsPerSecond { get; init; }

    /// <summary>Where the peak was measured ("MatMul q4_0 [8192, 2048] T=64 matmul_q4_0_tile4x2").</summary>
    public string PeakCase { get; init; } = "";

    /// <summary>Weight bytes one decode step reads.</summary>
    public long WeightBytesPerStep { get; init; }

    /// <summary>Per op shape: checks, timings and choices.</summary>
    public IReadOnlyList<OpTuning> Ops { get; init; } = [];

    /// <summary>Decode steps at growing batch (the hill-climb's measurements, with the kernels chosen).</summary>
    public IReadOnlyList<StepPoint> DecodeCurve { get; init; } = [];

    /// <summary>Prefill chunks of growing size (one sequence).</summary>
    public IReadOnlyList<StepPoint> PrefillCurve { get; init; } = [];

    /// <summary>Position (context length) of the decoded tokens in <see cref="DecodeCurve"/>.</summary>
    public int DecodePosition { get; init; }

    /// <summary>The chosen limits.</summary>
    public required BatchLimits Limits { get; init; }

    /// <summary>Single-sequence decode tokens/s this profile predicts (1 / batch-1 step time): what --device auto compares.</summary>
    public double PredictedDecodeTokensPerSecond => DecodeCurve.Count > 0 ? DecodeCurve[0].TokensPerSecond : 0;

    /// <summary>Every chosen variant.</summary>
    [JsonIgnore]
    public IEnumerable<KernelChoice> Choices => Ops.SelectMany(o => o.Chosen);
}
