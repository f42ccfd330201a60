using System.Diagnostics;
using Serving.Abstractions;
using Serving.Engine.Energy;

namespace Serving.Engine.Tests.Energy;

/// <summary>The sampler measures real intervals against fake meters whose energy follows the clock.</summary>
public sealed class EnergySamplerTests
{
    private static readonly long Origin = Stopwatch.GetTimestamp();
    private static double Clock => Stopwatch.GetElapsedTime(Origin).TotalSeconds;

    /// <summary>A counter of a constant 10 W: joules = 10 · seconds, read from the clock.</summary>
    private sealed class TenWattCounter : IEnergyMeter
    {
        public string Source => "fake counter";
        public bool TryReadJoules(out double joules)
        {
            joules = 10 * Clock;
            return true;
        }
    }

    /// <summary>A power sensor reading a constant 20 W.</summary>
    private sealed class TwentyWattSensor : IEnergyMeter
    {
        public string Source => "fake sensor (power samples)";
        public EnergyMeterKind Kind => EnergyMeterKind.PowerSamples;
        public bool TryReadJoules(out double joules)
        {
            joules = 0;
            return false;
        }
        public bool TryReadWatts(out double watts)
        {
            watts = 20;
            return true;
        }
    }

    [Fact]
    public void MeasuresAnIntervalFromACounterAndAPowerSensor_AlignedToTheInterval()
    {
        IEnergyMeter counter = new TenWattCounter(), sensor = new TwentyWattSensor();
        using var sampler = new EnergySampler([counter, sensor], TimeSpan.FromMilliseconds(10));
        Thread.Sleep(30);
        sampler.Mark();
        double start = sampler.Now;
        Thread.Sleep(100); // an interval to measure, not a wait for something to happen
        double end = sampler.Now;
        sampler.Mark();
        double seconds = end - start;

        var c = sampler.Measure([counter], start, end);
        Assert.Equal(10 * seconds, c.Joules!.Value, 10 * seconds * 0.05);
        Assert.Equal("counter", c.Method);

        var both = sampler.Measure([counter, sensor], start, end);
        Assert.Equal(30 * seconds, both.Joules!.Value, 30 * seconds * 0.05);
        Assert.Equal("counter + power samples", both.Method);
        Assert.Equal(30, both.Watts!.Value, 1.5);

        Assert.Equal("not measured", sampler.Measure([], start, end).Method);
    }

    [Fact]
    public void AnIntervalEndingAfterTheLastCounterReading_HasNoCounterAnswer()
    {
        IEnergyMeter counter = new TenWattCounter();
        using var sampler = new EnergySampler([counter], TimeSpan.FromSeconds(60)); // read once, at start
        double start = sampler.Now;
        var r = sampler.Measure([counter], start, start + 10);
        Assert.Null(r.Joules);
        Assert.Contains("no reading after the interval", r.Missing);
    }
}

/// <summary>serve's running total: a counter's difference since start, power samples integrated between reads.</summary>
public sealed class EnergyTotalTests
{
    private sealed class Fake(EnergyMeterKind kind) : IEnergyMeter
    {
        public double Value;
        public bool Fail;
        public string Source => "fake";
        public EnergyMeterKind Kind => kind;
        public bool TryReadJoules(out double joules)
        {
            joules = Value;
            return kind == EnergyMeterKind.Counter && !Fail;
        }
        public bool TryReadWatts(out double watts)
        {
            watts = Value;
            return kind == EnergyMeterKind.PowerSamples && !Fail;
        }
    }

    [Fact]
    public void Counter_GivesJoulesSinceStart()
    {
        var m = new Fake(EnergyMeterKind.Counter) { Value = 1000 };
        double now = 0;
        using var total = new EnergyTotal(m, Timeout.InfiniteTimeSpan, () => now);
        Assert.Equal(0, total.Read());
        m.Value = 1040;
        Assert.Equal(40, total.Read());
        m.Value = 1000; // went backwards: a reset, not negative energy
        Assert.Equal(40, total.Read());
        Assert.Equal("counter", total.Method);
    }

    [Fact]
    public void PowerSamples_AreIntegratedBetweenReads()
    {
        var m = new Fake(EnergyMeterKind.PowerSamples) { Value = 10 };
        double now = 0;
        using var total = new EnergyTotal(m, Timeout.InfiniteTimeSpan, () => now);
        now = 2;
        Assert.Equal(20, total.Read());     // 10 W for 2 s
        now = 4;
        m.Value = 30;
        Assert.Equal(60, total.Read());     // + a ramp 10 → 30 W over 2 s
        Assert.Equal("power samples", total.Method);
    }

    [Fact]
    public void AMeterThatNeverAnswers_HasNoTotal()
    {
        var m = new Fake(EnergyMeterKind.Counter) { Fail = true };
        using var total = new EnergyTotal(m, Timeout.InfiniteTimeSpan, () => 0);
        Assert.Null(total.Read());
    }
}
