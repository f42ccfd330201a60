using System.Text.Json;
using System.Text.Json.Serialization;

namespace Serving.Host.Benchmarks.Suite;

/// <summary>Mean ± sample standard deviation of repeated measurements, as llama-bench reports them.</summary>
/// <param name="Mean">Arithmetic mean.</param>
/// <param name="StdDev">Sample standard deviation (n − 1); 0 for one sample.</param>
/// <param name="N">Samples.</param>
/// <param name="Min">Smallest sample.</param>
/// <param name="Max">Largest sample.</param>
internal sealed record Stat(double Mean, double StdDev, int N, double Min, double Max)
{
    /// <summary>The statistics of <paramref name="values"/>, or null when there are none.</summary>
    public static Stat? Of(IEnumerable<double> values)
    {
        var v = values.Where(double.IsFinite).ToArray();
        if (v.Length == 0) return null;
        double mean = v.Average();
        double sd = v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1)) : 0;
        return new Stat(mean, sd, v.Length, v.Min(), v.Max());
    }

    /// <summary>"123.45 ± 5.60": <paramref name="decimals"/> for both, or three significant digits of the mean when it is
    /// below 1 (0.00231 ± 0.00012, not 0.00 ± 0.00).</summary>
    public string Format(int decimals = 2)
    {
        double a = Math.Abs(Mean);
        int d = a >= 1 || a == 0 || !double.IsFinite(a) ? decimals : Math.Clamp(2 - (int)Math.Floor(Math.Log10(a)), decimals, 9);
        string f = "F" + d.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return $"{Mean.ToString(f, System.Globalization.CultureInfo.InvariantCulture)} ± {StdDev.ToString(f, System.Globalization.CultureInfo.InvariantCulture)}";
    }
}

/// <summary>Everything one <c>bench</c> run measured: written as results.json, read back by <c>bench compare</c>.</summary>
internal sealed record SuiteResults
{
    /// <summary>Format id; bumped when fields change meaning.</summary>
    public string Schema { get; init; } = SchemaId;

    /// <summary>The current format.</summary>
    public const string SchemaId = "serving-bench/1";

    /// <summary>When the run started (UTC).</summary>
    public DateTimeOffset Created { get; init; }

    /// <summary>The command line as typed (arguments quoted where needed).</summary>
    public string CommandLine { get; init; } = "";

    /// <summary>The git commit the host was built from, and whether its tree had local changes (null when unknown).</summary>
    public GitFacts? Git { get; init; }

    /// <summary>The machine.</summary>
    public required HostFacts Host { get; init; }

    /// <summary>The workload.</summary>
    public required SuiteSettings Settings { get; init; }

    /// <summary>The model.</summary>
    public required ModelFacts Model { get; init; }

    /// <summary>The external meter (--power-cmd, --power-file), or null.</summary>
    public MeterFacts? ExternalMeter { get; init; }

    /// <summary>One entry per device, in run order.</summary>
    public List<DeviceResults> Devices { get; init; } = [];

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    /// <summary>The JSON text (indented, camelCase; '&lt;' and '&gt;' escaped so it can sit inside a script element).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads results.json; throws <see cref="InvalidDataException"/> naming the file when it is not one.</summary>
    public static SuiteResults Load(string path)
    {
        SuiteResults? r;
        try
        {
            r = JsonSerializer.Deserialize<SuiteResults>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a bench results file ({e.Message})");
        }
        if (r is null || r.Schema != SchemaId)
            throw new InvalidDataException($"{path}: not a bench results file of format {SchemaId} (found '{r?.Schema}')");
        return r;
    }
}

/// <summary>Build provenance.</summary>
/// <param name="Commit">Commit the host was built from (from its informational version), or null.</param>
/// <param name="Dirty">True when `git status` showed local changes to tracked files at run time; null when git could not tell.</param>
internal sealed record GitFacts(string? Commit, bool? Dirty);

/// <summary>The machine a run used.</summary>
internal sealed record HostFacts(string Machine, string Os, string? Kernel, int LogicalCpus, string Runtime, string ServingVersion);

/// <summary>The workload of a run.</summary>
internal sealed record SuiteSettings(int Prompt, int Gen, int[] Batches, int Repetitions, string KvType, int Threads, long BandwidthBufferBytes);

/// <summary>The model a run used, and the work one token costs.</summary>
internal sealed record ModelFacts(
    string Name, string File, string? Shape, string WeightType, long WeightBytes, long MatMulParameters,
    int Layers, int Dim, int Heads, int KvHeads, int HeadDim, int FfnDim, int Vocab);

/// <summary>A meter: where it reads and how ("counter", "power samples").</summary>
internal sealed record MeterFacts(string Source, string Kind);

/// <summary>A measured peak (bandwidth or MatMul throughput): the best sample, which a roof is, and every sample.</summary>
/// <param name="Value">Best sample (GB/s or GFLOP/s).</param>
/// <param name="Samples">Every sample, same unit.</param>
/// <param name="What">How it was measured.</param>
internal sealed record Peak(double Value, double[] Samples, string What);

/// <summary>Everything measured on one device.</summary>
internal sealed record DeviceResults
{
    /// <summary>"backend:index".</summary>
    public required string Id { get; init; }
    /// <summary>Marketing name.</summary>
    public string Name { get; init; } = "";
    /// <summary>Vendor.</summary>
    public string Vendor { get; init; } = "";
    /// <summary>Kind (cpu, gpu, integratedGpu, npu).</summary>
    public string Kind { get; init; } = "";
    /// <summary>Driver or runtime version.</summary>
    public string DriverVersion { get; init; } = "";
    /// <summary>Stable id of the physical device.</summary>
    public string Fingerprint { get; init; } = "";
    /// <summary>Memory usable for buffers.</summary>
    public long TotalMemoryBytes { get; init; }
    /// <summary>What the backend adds (memory heaps, features used).</summary>
    public IReadOnlyList<string> Details { get; init; } = [];
    /// <summary>The tuner profile the run used, or null.</summary>
    public JsonElement? TunerProfile { get; init; }
    /// <summary>Why there is no tuner profile, or null.</summary>
    public string? TunerNote { get; init; }
    /// <summary>The device's meter, or null: "not measured".</summary>
    public MeterFacts? Meter { get; init; }
    /// <summary>Measured memory bandwidth (GB/s): the floor of decode.</summary>
    public Peak? Bandwidth { get; set; }
    /// <summary>Measured MatMul throughput for the model's weight type (GFLOP/s): the compute roof.</summary>
    public Peak? Compute { get; set; }
    /// <summary>Each test (prompt processing, decode at each batch).</summary>
    public List<TestResult> Tests { get; init; } = [];
    /// <summary>Device time per op of a decode step, or null.</summary>
    public OpProfile? Ops { get; set; }
    /// <summary>Why the device could not be (fully) measured, or null.</summary>
    public string? Error { get; set; }
}

/// <summary>One repetition of a test.</summary>
/// <param name="Seconds">Wall time of the repetition.</param>
/// <param name="TokensPerSecond">Tokens processed (all sequences) per second.</param>
/// <param name="Joules">Energy from the device's meter, or null (not measured, or the meter could not tell).</param>
/// <param name="EnergyNote">Why <paramref name="Joules"/> is null while the device has a meter, or null.</param>
/// <param name="MeterReads">Meter readings that fell inside the interval.</param>
/// <param name="SystemJoules">Energy from the external meter, or null.</param>
/// <param name="SystemNote">Why <paramref name="SystemJoules"/> is null while there is an external meter, or null.</param>
internal sealed record Sample(double Seconds, double TokensPerSecond, double? Joules, string? EnergyNote, int MeterReads, double? SystemJoules, string? SystemNote);

/// <summary>A test on one device: its repetitions and their statistics.</summary>
internal sealed record TestResult
{
    /// <summary>"pp512", "tg128".</summary>
    public required string Name { get; init; }
    /// <summary>"prompt" or "decode".</summary>
    public required string Kind { get; init; }
    /// <summary>Sequences per step.</summary>
    public int Batch { get; init; }
    /// <summary>Tokens processed per repetition (all sequences).</summary>
    public long Tokens { get; init; }
    /// <summary>Forward steps per repetition.</summary>
    public int Steps { get; init; }
    /// <summary>FLOPs per repetition (2 per multiply-add: MatMuls and attention).</summary>
    public double Flops { get; init; }
    /// <summary>Bytes read from weights per repetition (all weights once per step).</summary>
    public double Bytes { get; init; }
    /// <summary>Every repetition, in run order.</summary>
    public List<Sample> Samples { get; init; } = [];
    /// <summary>Tokens per second, all sequences.</summary>
    public Stat? TokensPerSecond { get; init; }
    /// <summary>Tokens per second of one sequence.</summary>
    public Stat? TokensPerSecondPerSequence { get; init; }
    /// <summary>Milliseconds per token of one sequence (decode: per step).</summary>
    public Stat? MsPerToken { get; init; }
    /// <summary>Weight bytes read per second, GB/s.</summary>
    public Stat? AchievedGBps { get; init; }
    /// <summary>FLOP/s achieved, GFLOP/s.</summary>
    public Stat? AchievedGFlops { get; init; }
    /// <summary>The fastest the measured peaks allow (roofline: max of bytes ÷ bandwidth and FLOPs ÷ compute), tokens/s.</summary>
    public double? FloorTokensPerSecond { get; init; }
    /// <summary>Which roof binds: "bandwidth" or "compute".</summary>
    public string? FloorBound { get; init; }
    /// <summary>Mean tokens/s ÷ floor.</summary>
    public double? OfFloor { get; init; }
    /// <summary>Device meter: joules per token.</summary>
    public Stat? JoulesPerToken { get; init; }
    /// <summary>Device meter: average watts.</summary>
    public Stat? Watts { get; init; }
    /// <summary>Device meter: tokens per joule.</summary>
    public Stat? TokensPerJoule { get; init; }
    /// <summary>Device meter: "counter", "power samples", "counter + power samples", or "not measured".</summary>
    public string EnergyMethod { get; init; } = "not measured";
    /// <summary>External meter: joules per token.</summary>
    public Stat? SystemJoulesPerToken { get; init; }
    /// <summary>External meter: tokens per joule.</summary>
    public Stat? SystemTokensPerJoule { get; init; }
    /// <summary>External meter: average watts.</summary>
    public Stat? SystemWatts { get; init; }
}

/// <summary>Device time per op kind over profiled decode steps.</summary>
/// <param name="Batch">Sequences per profiled step.</param>
/// <param name="Steps">Steps profiled.</param>
/// <param name="StepMs">Mean device time of a profiled step (all ops).</param>
/// <param name="PerOp">Each op kind: mean ms per step and ops per step, largest first.</param>
/// <param name="Note">Why there is no profile, or null.</param>
internal sealed record OpProfile(int Batch, int Steps, double StepMs, List<OpShare> PerOp, string? Note);

/// <summary>One op kind's share of a step.</summary>
internal sealed record OpShare(string Op, double MsPerStep, double CountPerStep);
