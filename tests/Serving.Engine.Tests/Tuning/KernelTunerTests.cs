using Serving.Abstractions;
using Serving.Engine.Tuning;
using Serving.Engine.Tuning.Cases;

namespace Serving.Engine.Tests.Tuning;

/// <summary>The kernel choice on a fake device whose variants have known costs and known correctness.</summary>
public sealed class KernelTunerTests
{
    private static KernelVariant V(string name, bool invariant = true) => new(name, OpKind.MatMul, DataType.F32, name) { BatchInvariant = invariant };

    private static readonly FakeKernel Plain = new(V("mm_plain"), t => 100.0 * t);      // the default
    private static readonly FakeKernel Tile = new(V("mm_tile"), t => 150 + 20.0 * t);   // slower at T = 1, faster from T = 2

    private static OpTuning Tune(FakeDevice device, params int[] buckets)
    {
        using var stream = device.CreateStream();
        using var c = new MatMulCase(device, DataType.F32, 24, 32, buckets.Max(), rotationBytes: 1 << 14, seed: 3);
        var options = new TuneOptions { Fast = true, Buckets = buckets };
        return KernelTuner.TuneCase(stream, c, device.GetVariants(OpKind.MatMul, DataType.F32), 1, "test", options, new ProgressCounter(null), () => false);
    }

    private static string? ChosenAt(OpTuning tuning, int batch) => tuning.Chosen.SingleOrDefault(c => c.Batch == batch)?.Variant;

    [Fact]
    public void KeepsTheFastestValidVariantPerBucket()
    {
        var tuning = Tune(new FakeDevice([Plain, Tile]), 1, 2, 4, 8);
        Assert.Equal("mm_plain", ChosenAt(tuning, 1));
        Assert.Equal("mm_tile", ChosenAt(tuning, 2));
        Assert.Equal("mm_tile", ChosenAt(tuning, 8));
        // The fake clock makes timings exact: the median is the declared cost.
        Assert.Equal(150 + 20 * 4, tuning.Timings.Single(t => t.Variant == "mm_tile" && t.Batch == 4).Time.MedianUs, 6);
        Assert.All(tuning.Checks, c => Assert.True(c.Usable, c.Status));
    }

    [Fact]
    public void FastButWrongVariantIsRejectedNeverTimedNorChosen()
    {
        var wrong = new FakeKernel(V("mm_wrong"), _ => 1, Wrong: true);
        var tuning = Tune(new FakeDevice([Plain, wrong, Tile]), 1, 2, 4);
        var check = tuning.Checks.Single(c => c.Variant == "mm_wrong");
        Assert.False(check.Usable);
        Assert.StartsWith("rejected: wrong result", check.Status);
        Assert.True(check.Error > check.Limit);
        Assert.DoesNotContain(tuning.Timings, t => t.Variant == "mm_wrong");
        Assert.DoesNotContain(tuning.Chosen, c => c.Variant == "mm_wrong");
        Assert.Equal("mm_tile", ChosenAt(tuning, 4));
    }

    [Fact]
    public void ABurstOfLoadDuringTheDefaultsTimingDoesNotHandTheChoiceToAnother()
    {
        // The default really costs 100 µs per row, the other 120; but the machine was busy (3×) for every call of the
        // default until the other variant had run 3 times — i.e. through validation and the default's first timing pass.
        int otherCalls = 0;
        var plain = new FakeKernel(V("mm_plain"), t => (otherCalls < 3 ? 300.0 : 100.0) * t);
        var other = new FakeKernel(V("mm_other"), t => { otherCalls++; return 120.0 * t; });
        var tuning = Tune(new FakeDevice([plain, other]), 4);
        Assert.Equal("mm_plain", ChosenAt(tuning, 4)); // the confirming pass found the default faster
        Assert.Equal(400, tuning.Timings.Single(t => t.Variant == "mm_plain").Time.MedianUs, 6);
        Assert.Equal(480, tuning.Timings.Single(t => t.Variant == "mm_other").Time.MedianUs, 6);
    }

    [Fact]
    public void AWinnerThatStaysFasterIsConfirmed()
    {
        var faster = new FakeKernel(V("mm_faster"), t => 50.0 * t);
        var tuning = Tune(new FakeDevice([Plain, faster]), 4);
        Assert.Equal("mm_faster", ChosenAt(tuning, 4));
    }

    [Fact]
    public void DefaultIsKeptWhenAnotherIsWithinTheNoiseMargin()
    {
        var close = new FakeKernel(V("mm_close"), t => 99.0 * t); // 1 % faster than the default
        var tuning = Tune(new FakeDevice([Plain, close]), 1, 4);
        Assert.Equal("mm_plain", ChosenAt(tuning, 1));
        Assert.Equal("mm_plain", ChosenAt(tuning, 4));
    }

    [Fact]
    public void NonInvariantVariantIsSkippedOnAReproducibleDeviceOnly()
    {
        var split = new FakeKernel(V("mm_split", invariant: false), _ => 10);
        var strict = Tune(new FakeDevice([Plain, split], reproducible: true), 1, 4);
        Assert.StartsWith("skipped: not batch-invariant", strict.Checks.Single(c => c.Variant == "mm_split").Status);
        Assert.DoesNotContain(strict.Chosen, c => c.Variant == "mm_split");

        var loose = Tune(new FakeDevice([Plain, split], reproducible: false), 1, 4);
        Assert.True(loose.Checks.Single(c => c.Variant == "mm_split").Usable);
        Assert.Equal("mm_split", ChosenAt(loose, 4));
    }

    [Fact]
    public void InvariantVariantThatDiffersFromTheDefaultInSomeBitIsRejectedWhenReproducible()
    {
        var noisy = new FakeKernel(V("mm_noisy"), _ => 10, Perturb: true);
        var strict = Tune(new FakeDevice([Plain, noisy], reproducible: true), 1, 4);
        var check = strict.Checks.Single(c => c.Variant == "mm_noisy");
        Assert.False(check.BitIdenticalToDefault);
        Assert.StartsWith("rejected: batch-invariant but not bit-identical", check.Status);
        Assert.Equal("mm_plain", ChosenAt(strict, 4));

        var loose = Tune(new FakeDevice([Plain, noisy], reproducible: false), 1, 4);
        Assert.Equal("mm_noisy", ChosenAt(loose, 4)); // within tolerance: allowed when reproducibility is off
    }

    [Fact]
    public void VariantIsTimedOnlyOnBucketsItAppliesTo()
    {
        var big = new FakeKernel(V("mm_big") with { AppliesTo = new VariantShapes(MinRows: 4) }, t => 5.0 * t);
        var tuning = Tune(new FakeDevice([Plain, big]), 1, 2, 4, 8);
        Assert.Equal([4, 8], tuning.Timings.Where(t => t.Variant == "mm_big").Select(t => t.Batch));
        Assert.Equal("mm_plain", ChosenAt(tuning, 2));
        Assert.Equal("mm_big", ChosenAt(tuning, 4));
    }

    [Fact]
    public void TimeLimitStopsTimingAndSaysSo()
    {
        var device = new FakeDevice([Plain, Tile]);
        using var stream = device.CreateStream();
        using var c = new MatMulCase(device, DataType.F32, 24, 32, 4, 1 << 14, 3);
        var tuning = KernelTuner.TuneCase(stream, c, device.GetVariants(OpKind.MatMul, DataType.F32), 1, "test",
            new TuneOptions { Fast = true, Buckets = [1, 2, 4] }, new ProgressCounter(null), () => true);
        Assert.Empty(tuning.Timings);
        Assert.Empty(tuning.Chosen);
        Assert.Contains("time limit", tuning.Note);
    }

    [Fact]
    public void WeightCopiesRotatePastTheRotationBytes()
    {
        var device = new FakeDevice([Plain]);
        using var c = new MatMulCase(device, DataType.F32, 24, 32, 1, rotationBytes: 10 * 24 * 32 * 4, seed: 1);
        Assert.Equal(10, c.Copies);
    }
}
