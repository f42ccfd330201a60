using Serving.Abstractions;
using Serving.Engine.Energy;

namespace Serving.Engine.Tests.Energy;

/// <summary>The energy arithmetic of docs/bench.md: wrap-around, alignment with the measured interval, power integration,
/// joules per token, and readings that combine counters with power samples.</summary>
public sealed class EnergyMathTests
{
    [Theory]
    [InlineData(100, 250, 1000, 150L)]
    [InlineData(900, 50, 1000, 150L)]     // wrapped once: 100 to the top, 50 after it
    [InlineData(900, 900, 1000, 0L)]
    [InlineData(900, 50, 0, null)]        // went down, range unknown: a wrap cannot be told from a reset
    public void WrapDelta_AddsTheRangeOnceWhenTheCounterWentDown(long previous, long current, long range, long? expected)
    {
        Assert.Equal(expected, EnergyMath.WrapDelta(previous, current, range));
    }

    private static readonly MeterSample[] Counter = [new(0, 100), new(1, 110), new(2, 130), new(3, 130), new(4, 170)];

    [Theory]
    [InlineData(0, 2, 30)]
    [InlineData(0.5, 1.5, 15)]    // 105 → 120: linear between the readings on either side of each edge
    [InlineData(1, 4, 60)]
    [InlineData(2.5, 3.5, 20)]    // 130 → 150: the counter stood still 2..3, then moved
    public void CounterJoules_InterpolatesAtTheIntervalsEdges(double start, double end, double expected)
    {
        Assert.Equal(expected, EnergyMath.CounterJoules(Counter, start, end)!.Value, 9);
    }

    [Fact]
    public void CounterJoules_IsNullWhenTheReadingsDoNotBracketTheInterval_OrTheCounterDidNotMove()
    {
        Assert.Null(EnergyMath.CounterJoules(Counter, -1, 2));          // nothing read before the start
        Assert.Null(EnergyMath.CounterJoules(Counter, 3, 5));           // nothing read after the end
        Assert.Null(EnergyMath.CounterJoules([new(0, 5), new(1, 5), new(2, 5)], 0.2, 1.8)); // below the counter's resolution, not 0 J
        Assert.Null(EnergyMath.CounterJoules([new(0, 5), new(1, 3)], 0, 1)); // went down: a reset, not energy
        Assert.Null(EnergyMath.CounterJoules([new(0, 5)], 0, 0));
    }

    [Fact]
    public void CounterJoules_RefusesUnsortedReadings()
    {
        Assert.Throws<ArgumentException>(() => EnergyMath.CounterJoules([new(1, 5), new(0, 6)], 0, 1));
    }

    [Fact]
    public void PowerJoules_IntegratesTrapezoidsClippedToTheInterval()
    {
        MeterSample[] constant = [new(0, 50), new(1, 50), new(2, 50)];
        Assert.Equal(100, EnergyMath.PowerJoules(constant, 0, 2, 1)!.Value, 9);
        Assert.Equal(25, EnergyMath.PowerJoules(constant, 0.25, 0.75, 1)!.Value, 9);
        // A ramp 0 → 100 W over 2 s: 100 J; its second half 75 J.
        MeterSample[] ramp = [new(0, 0), new(2, 100)];
        Assert.Equal(100, EnergyMath.PowerJoules(ramp, 0, 2, 1)!.Value, 9);
        Assert.Equal(75, EnergyMath.PowerJoules(ramp, 1, 2, 1)!.Value, 9);
        // Beyond the samples the nearest one holds: 10 W for 0.5 s before the first sample.
        MeterSample[] late = [new(0.5, 10), new(1, 10)];
        Assert.Equal(10, EnergyMath.PowerJoules(late, 0, 1, 1)!.Value, 9);
    }

    [Fact]
    public void PowerJoules_IsNullWhenNoSampleIsNear_OrASampleIsBad()
    {
        Assert.Null(EnergyMath.PowerJoules([new(10, 50)], 0, 1, maxGap: 2));
        Assert.NotNull(EnergyMath.PowerJoules([new(2.5, 50)], 0, 1, maxGap: 2));
        Assert.Null(EnergyMath.PowerJoules([new(0, 50), new(1, double.NaN)], 0, 1, 1));
        Assert.Null(EnergyMath.PowerJoules([new(0, -1)], 0, 1, 1));
        Assert.Null(EnergyMath.PowerJoules([], 0, 1, 1));
    }

    [Fact]
    public void Reading_GivesJoulesPerToken_WattsAndTokensPerJoule()
    {
        var r = new EnergyReading(2, [new EnergyPart("rapl:package-0", EnergyMeterKind.Counter, 30, 5)]);
        Assert.Equal(30, r.Joules);
        Assert.Equal(15, r.Watts);
        Assert.Equal(0.25, r.JoulesPerToken(120));
        Assert.Equal(4, r.TokensPerJoule(120));
        Assert.Null(r.JoulesPerToken(0));
        Assert.Equal("counter", r.Method);
        Assert.Null(r.Missing);
    }

    [Fact]
    public void Reading_WithCounterAndPowerSamples_SumsThemAndSaysBoth()
    {
        var r = new EnergyReading(1, [
            new EnergyPart("rapl:package-0", EnergyMeterKind.Counter, 20, 3),
            new EnergyPart("hwmon:amdgpu power1_average (power samples)", EnergyMeterKind.PowerSamples, 35, 10)]);
        Assert.Equal(55, r.Joules);
        Assert.Equal("counter + power samples", r.Method);
        Assert.Equal(55, r.Watts);
    }

    [Fact]
    public void Reading_WithAPartMissing_HasNoTotal_AndSaysWhich()
    {
        var r = new EnergyReading(1, [
            new EnergyPart("rapl:package-0", EnergyMeterKind.Counter, null, 0, "not readable (3 failed reads)"),
            new EnergyPart("hwmon:amdgpu power1_average (power samples)", EnergyMeterKind.PowerSamples, 35, 10)]);
        Assert.Null(r.Joules); // a partial sum would understate the energy
        Assert.Null(r.TokensPerJoule(10));
        Assert.Equal("rapl:package-0: not readable (3 failed reads)", r.Missing);
    }

    [Fact]
    public void Reading_WithoutMeters_IsNotMeasured()
    {
        var r = new EnergyReading(1, []);
        Assert.Null(r.Joules);
        Assert.Equal("not measured", r.Method);
        Assert.Equal("not measured", r.Missing);
    }

    /// <summary>A meter written against contract 2.0: only the two members it had.</summary>
    private sealed class ContractTwoZeroMeter : IEnergyMeter
    {
        public string Source => "old";
        public bool TryReadJoules(out double joules)
        {
            joules = 1;
            return true;
        }
    }

    [Fact]
    public void AMeterWrittenAgainstContract2_0_IsACounter_WithoutWatts()
    {
        IEnergyMeter m = new ContractTwoZeroMeter();
        Assert.Equal(EnergyMeterKind.Counter, m.Kind);
        Assert.False(m.TryReadWatts(out _));
    }
}
