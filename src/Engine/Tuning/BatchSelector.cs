using System.Diagnostics;
using System.Globalization;

namespace Serving.Engine.Tuning;

/// <summary>The rules a climb follows.</summary>
/// <param name="First">Size measured first (1 for decode batches).</param>
/// <param name="Limit">Largest size that may be tried (the smaller of the tuner's maximum and the memory cap).</param>
/// <param name="LimitReason">Why the limit is what it is ("the KV-cache memory holds 93 sequences of 512 tokens").</param>
/// <param name="TpotTargetMs">A step may take at most this long (0 = no target).</param>
/// <param name="MinGain">A doubling must raise tokens/s by at least this fraction.</param>
/// <param name="TimeLimit">No further size is measured after this much wall time (null = none).</param>
/// <param name="Unit">"batch" or "chunk", for the reasons.</param>
public sealed record ClimbPolicy(int First, int Limit, string LimitReason, double TpotTargetMs, double MinGain, TimeSpan? TimeLimit, string Unit = "batch");

/// <summary>What a climb measured and chose.</summary>
/// <param name="Curve">Every measured point, in size order.</param>
/// <param name="Chosen">The chosen size.</param>
/// <param name="Reason">Why the climb stopped there.</param>
public sealed record ClimbResult(IReadOnlyList<StepPoint> Curve, int Chosen, string Reason);

/// <summary>
/// Batch selection (design §5 step 3, docs/tuner.md): a hill-climb over whole-step times, doubling the size from
/// <see cref="ClimbPolicy.First"/>. It keeps doubling while the larger size still raises tokens/s by at least the
/// minimum gain (a meaningful step) and its step stays within the per-token latency target; it stops on a plateau
/// (confirmed by one more doubling, so that a single noisy measurement does not end it), on the target, on the memory
/// cap, or on the time limit, and chooses the last size it kept. Pure logic over a
/// measurement function, so tests drive it with synthetic rooflines.
/// </summary>
public static class BatchSelector
{
    /// <summary>Climbs with <paramref name="measure"/> (size → step timing; null when the size cannot run).</summary>
    public static ClimbResult Climb(Func<int, TimingStats?> measure, ClimbPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(measure);
        ArgumentNullException.ThrowIfNull(policy);
        if (policy.First < 1 || policy.Limit < policy.First) throw new ArgumentException($"bad climb policy {policy}");
        var clock = Stopwatch.StartNew();
        var curve = new List<StepPoint>();
        string u = policy.Unit;
        TimingStats? firstTime = measure(policy.First);
        if (firstTime is null) return new ClimbResult(curve, policy.First, $"{u} {policy.First} could not run");
        var current = new StepPoint(policy.First, firstTime);
        curve.Add(current);
        if (policy.TpotTargetMs > 0 && current.Ms > policy.TpotTargetMs)
            return new ClimbResult(curve, current.Batch,
                F($"{u} {current.Batch} already takes {current.Ms:0.0} ms per step, over the {policy.TpotTargetMs:0.#} ms TPOT target: the smallest {u}"));
        while (true)
        {
            int next = current.Batch * 2;
            if (next > policy.Limit)
                return new ClimbResult(curve, current.Batch, F($"{u} {next} would exceed the limit: {policy.LimitReason}"));
            if (policy.TimeLimit is { } limit && clock.Elapsed > limit)
                return new ClimbResult(curve, current.Batch, F($"tuning time limit ({limit.TotalSeconds:0} s) reached before {u} {next}"));
            TimingStats? time = measure(next);
            if (time is null) return new ClimbResult(curve, current.Batch, F($"{u} {next} could not run"));
            var point = new StepPoint(next, time);
            curve.Add(point);
            if (policy.TpotTargetMs > 0 && point.Ms > policy.TpotTargetMs)
                return new ClimbResult(curve, current.Batch,
                    F($"{u} {next} takes {point.Ms:0.0} ms per step, over the {policy.TpotTargetMs:0.#} ms TPOT target"));
            double gain = point.TokensPerSecond / current.TokensPerSecond - 1;
            if (gain < policy.MinGain)
            {
                // One slow measurement on a shared machine must not end the climb: a plateau is confirmed by the next
                // doubling too. If that one, over both doublings, pays what two meaningful steps would, the dip was
                // noise and the climb goes on from there.
                string plateau = F($"plateau: {u} {next} gives {gain * 100:+0.0;-0.0} % tokens/s over {current.Batch} (< {policy.MinGain * 100:0} %)");
                StepPoint? confirm = MeasureWithin(measure, policy, clock, next * 2);
                if (confirm is null)
                    return new ClimbResult(curve, current.Batch, plateau);
                curve.Add(confirm);
                double gain2 = confirm.TokensPerSecond / current.TokensPerSecond - 1;
                bool withinTarget = policy.TpotTargetMs <= 0 || confirm.Ms <= policy.TpotTargetMs;
                if (!withinTarget || gain2 < (1 + policy.MinGain) * (1 + policy.MinGain) - 1)
                    return new ClimbResult(curve, current.Batch, plateau + F($", confirmed by {u} {confirm.Batch} ({gain2 * 100:+0.0;-0.0} % over {current.Batch})"));
                current = confirm;
                continue;
            }
            current = point;
        }
    }

    // The confirmation point of a plateau, or null where the climb could not go (limit, time, a size that cannot run).
    private static StepPoint? MeasureWithin(Func<int, TimingStats?> measure, ClimbPolicy policy, Stopwatch clock, int size)
    {
        if (size > policy.Limit || (policy.TimeLimit is { } limit && clock.Elapsed > limit))
            return null;
        return measure(size) is { } time ? new StepPoint(size, time) : null;
    }

    /// <summary>
    /// Re-applies the climb's rules to an already measured curve, e.g. with a tighter TPOT target than the profile was
    /// made with. The climb stops where the stored curve ends ("measured only up to …").
    /// </summary>
    public static ClimbResult Replay(IReadOnlyList<StepPoint> curve, ClimbPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(curve);
        var byBatch = curve.ToDictionary(p => p.Batch, p => p.Time);
        var result = Climb(b => byBatch.GetValueOrDefault(b), policy with { TimeLimit = null });
        int last = result.Curve.Count > 0 ? result.Curve[^1].Batch : policy.First;
        return result.Reason.EndsWith("could not run", StringComparison.Ordinal)
            ? result with { Reason = F($"the profile's curve was measured only up to {policy.Unit} {last}") }
            : result;
    }

    /// <summary>
    /// The measured knee: where the line through the curve's last two points (the compute-bound part) crosses the
    /// first point's step time (the bandwidth-bound level). Null when the curve has not yet risen 25 % above its first
    /// point, or does not rise at its end.
    /// </summary>
    public static double? MeasuredKnee(IReadOnlyList<StepPoint> curve)
    {
        ArgumentNullException.ThrowIfNull(curve);
        if (curve.Count < 2) return null;
        StepPoint first = curve[0], a = curve[^2], b = curve[^1];
        if (b.Ms < 1.25 * first.Ms) return null;
        double slope = (b.Ms - a.Ms) / (b.Batch - a.Batch);
        if (!(slope > 0)) return null;
        return Math.Max(first.Batch, b.Batch - (b.Ms - first.Ms) / slope);
    }

    /// <summary>The roofline's knee (design §5): peak FLOP/s ÷ bandwidth × bytes per weight ÷ 2 — the batch where
    /// reading the weights once and computing 2 FLOP per weight per row take equally long.</summary>
    public static double RooflineKnee(double peakFlopsPerSecond, double bandwidthBytesPerSecond, double bytesPerWeight)
        => bandwidthBytesPerSecond > 0 ? peakFlopsPerSecond / bandwidthBytesPerSecond * bytesPerWeight / 2 : 0;

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
