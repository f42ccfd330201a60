namespace Serving.Engine.Tuning;

/// <summary>How thoroughly to tune, and the serving policy the batch choice follows (docs/tuner.md).</summary>
public sealed record TuneOptions
{
    /// <summary>Fast mode (what serve and generate run when no profile exists): only ops with a choice of variants,
    /// buckets 1–16, short budgets, a total time limit; full mode (tune's default): every op, buckets 1–256.</summary>
    public bool Fast { get; init; }

    /// <summary>Per-token latency target in ms for the batch choice (0 = none: batch grows until throughput plateaus).</summary>
    public double TpotTargetMs { get; init; }

    /// <summary>Smallest relative gain in tokens/s a doubling must bring to be taken (0.10 = 10 %).</summary>
    public double MinGain { get; init; } = 0.10;

    /// <summary>Tokens each sequence is planned to hold when the KV-cache memory caps the batch (prompt plus output).</summary>
    public int PlanningTokens { get; init; } = 512;

    /// <summary>Context position of the tokens the decode curve times.</summary>
    public int DecodePosition { get; init; } = 128;

    /// <summary>Batch buckets op timings use; default by mode.</summary>
    public IReadOnlyList<int>? Buckets { get; init; }

    /// <summary>Largest decode batch the hill-climb may try; default 64 fast, 256 full.</summary>
    public int? MaxBatch { get; init; }

    /// <summary>Largest prefill chunk the token-budget climb may try; default 256 fast, 512 full.</summary>
    public int? MaxChunk { get; init; }

    /// <summary>Bytes the MatMul timings rotate through (weight copies past the last-level cache); default 128 MiB fast, 512 MiB full.</summary>
    public long? RotationBytes { get; init; }

    /// <summary>Wall-time limit of each phase (kernels, decode curve, prefill curve); default 20 s fast, 10 min full.</summary>
    public TimeSpan? PhaseLimit { get; init; }

    /// <summary>KV element type of the model as it will serve (f16 by default).</summary>
    public Abstractions.DataType KvCacheType { get; init; } = Abstractions.DataType.F16;

    internal IReadOnlyList<int> EffectiveBuckets => Buckets ?? (Fast ? [1, 2, 4, 8, 16] : [1, 2, 4, 8, 16, 32, 64, 128, 256]);
    internal int EffectiveMaxBatch => MaxBatch ?? (Fast ? 64 : 256);
    internal int EffectiveMaxChunk => MaxChunk ?? (Fast ? 256 : 512);
    internal long EffectiveRotationBytes => RotationBytes ?? (Fast ? 128L << 20 : 512L << 20);
    internal TimeSpan EffectivePhaseLimit => PhaseLimit ?? (Fast ? TimeSpan.FromSeconds(20) : TimeSpan.FromMinutes(10));
    internal TimingBudget OpBudget => Fast ? TimingBudget.FastOp : TimingBudget.FullOp;
    internal TimingBudget StepBudget => Fast ? TimingBudget.FastStep : TimingBudget.FullStep;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field.</summary>
    public void Validate()
    {
        if (!(TpotTargetMs >= 0) || double.IsInfinity(TpotTargetMs)) throw new ArgumentException($"TpotTargetMs {TpotTargetMs} must be ≥ 0");
        if (!(MinGain > 0) || MinGain > 10) throw new ArgumentException($"MinGain {MinGain} must be in (0, 10]");
        if (PlanningTokens < 1) throw new ArgumentException($"PlanningTokens {PlanningTokens} must be ≥ 1");
        if (DecodePosition is < 0 or > 65536) throw new ArgumentException($"DecodePosition {DecodePosition} out of range");
        if (EffectiveBuckets.Count == 0 || EffectiveBuckets.Any(b => b < 1) || !EffectiveBuckets.SequenceEqual(EffectiveBuckets.Order().Distinct()))
            throw new ArgumentException("Buckets must be distinct ascending positive sizes");
        if (EffectiveMaxBatch is < 1 or > 4096) throw new ArgumentException($"MaxBatch {EffectiveMaxBatch} out of range [1, 4096]");
        if (EffectiveMaxChunk is < 1 or > 65536) throw new ArgumentException($"MaxChunk {EffectiveMaxChunk} out of range");
    }
}
