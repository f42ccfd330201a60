using Serving.Engine.Tuning;

namespace Serving.Engine.Tests.Tuning;

/// <summary>The batch hill-climb on synthetic rooflines: step(B) = max(floor, B × per-row cost).</summary>
public sealed class BatchSelectorTests
{
    private static TimingStats Ms(double ms) => TimingStats.From([ms * 1000]);

    /// <summary>A roofline: 10 ms until compute takes over at 2 ms per row, so the knee is at B = 5.</summary>
    private static TimingStats? Roofline(int b) => Ms(Math.Max(10, 2.0 * b));

    private static ClimbPolicy Policy(double tpot = 0, int limit = 256) => new(1, limit, "test limit", tpot, 0.10, null);

    [Fact]
    public void StopsOnThePlateauAndChoosesTheLastSizeThatStillPaid()
    {
        var result = BatchSelector.Climb(Roofline, Policy());
        // 1→2→4 double tokens/s, 4→8 gives +25 %, 8→16 gives +0 % and 32 confirms it: plateau, keep 8.
        Assert.Equal(8, result.Chosen);
        Assert.StartsWith("plateau: batch 16 gives +0.0 %", result.Reason);
        Assert.EndsWith("confirmed by batch 32 (+0.0 % over 8)", result.Reason);
        Assert.Equal([1, 2, 4, 8, 16, 32], result.Curve.Select(p => p.Batch));
    }

    [Fact]
    public void OneNoisyMeasurementDoesNotEndTheClimb()
    {
        // The knee is at B = 20 (10 ms, then 0.5 ms per row), but batch 8 was measured during a burst of other load.
        var result = BatchSelector.Climb(b => b == 8 ? Ms(40) : Ms(Math.Max(10, 0.5 * b)), Policy());
        // 4→8 looks like −50 %; 16 (10 ms) pays +300 % over 4, so the climb goes on: 16→32 +25 %, 32→64 +0 %, 128 +0 %.
        Assert.Equal(32, result.Chosen);
        Assert.Equal([1, 2, 4, 8, 16, 32, 64, 128], result.Curve.Select(p => p.Batch));
        Assert.StartsWith("plateau: batch 64 gives +0.0 %", result.Reason);
    }

    [Fact]
    public void ConfirmationBeyondTheLimitKeepsThePlateau()
    {
        var result = BatchSelector.Climb(Roofline, Policy(limit: 16));
        Assert.Equal(8, result.Chosen);
        Assert.Equal([1, 2, 4, 8, 16], result.Curve.Select(p => p.Batch));
        Assert.Equal("plateau: batch 16 gives +0.0 % tokens/s over 8 (< 10 %)", result.Reason);
    }

    [Fact]
    public void FindsTheKneeOfASyntheticRoofline()
    {
        var curve = BatchSelector.Climb(b => Ms(Math.Max(10, 2.0 * b)), Policy() with { MinGain = 0.001 }).Curve; // climb past the knee
        double? knee = BatchSelector.MeasuredKnee(curve);
        Assert.NotNull(knee);
        Assert.Equal(5, knee!.Value, 6);
        // The roofline's own prediction: peak / bandwidth × bytes per weight / 2 — 100 GFLOP/s, 50 GB/s, 1 byte → 1.
        Assert.Equal(1.0, BatchSelector.RooflineKnee(100e9, 50e9, 1.0), 9);
    }

    [Fact]
    public void FlatCurveHasNoKneeYet()
    {
        var flat = new[] { 1, 2, 4 }.Select(b => new StepPoint(b, Ms(10 + 0.01 * b))).ToList();
        Assert.Null(BatchSelector.MeasuredKnee(flat));
    }

    [Fact]
    public void RespectsTheTpotTarget()
    {
        var result = BatchSelector.Climb(Roofline, Policy(tpot: 12));
        Assert.Equal(4, result.Chosen); // batch 8 takes 16 ms > 12 ms
        Assert.Contains("over the 12 ms TPOT target", result.Reason);
    }

    [Fact]
    public void BatchOneOverTheTargetStillServesOneSequence()
    {
        var result = BatchSelector.Climb(Roofline, Policy(tpot: 5));
        Assert.Equal(1, result.Chosen);
        Assert.Contains("already takes 10.0 ms", result.Reason);
        Assert.Single(result.Curve);
    }

    [Fact]
    public void StopsAtTheMemoryCap()
    {
        var result = BatchSelector.Climb(b => Ms(10), Policy(limit: 6) with { LimitReason = "the KV-cache memory holds 6 sequences" });
        Assert.Equal(4, result.Chosen);
        Assert.Equal("batch 8 would exceed the limit: the KV-cache memory holds 6 sequences", result.Reason);
    }

    [Fact]
    public void SizeThatCannotRunEndsTheClimb()
    {
        var result = BatchSelector.Climb(b => b > 2 ? null : Ms(10), Policy());
        Assert.Equal(2, result.Chosen);
        Assert.Equal("batch 4 could not run", result.Reason);
    }

    [Fact]
    public void ReplayAppliesATighterTargetToAStoredCurve()
    {
        var stored = BatchSelector.Climb(Roofline, Policy()).Curve;
        var replay = BatchSelector.Replay(stored, Policy(tpot: 12));
        Assert.Equal(4, replay.Chosen);
        var looser = BatchSelector.Replay(stored.Take(3).ToList(), Policy());
        Assert.Equal(4, looser.Chosen);
        Assert.Equal("the profile's curve was measured only up to batch 4", looser.Reason);
    }

    [Fact]
    public void TimingStatsMedianAndSpread()
    {
        var s = TimingStats.From([5, 1, 3, 2, 4]);
        Assert.Equal(3, s.MedianUs);
        Assert.Equal(1, s.MinUs);
        Assert.Equal(1, s.P10Us);
        Assert.Equal(5, s.P90Us);
        Assert.Equal(4.0 / 3, s.Spread, 9);
        Assert.Equal(2.5, TimingStats.From([1, 2, 3, 4]).MedianUs);
    }
}
