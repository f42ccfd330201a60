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
        Thread.Sleep(250);
        double end = sampler.Now;
        sampler.Mark();
        double seconds = end - start;

        var c = sampler.Measure([counter], start, end);
        Assert.Equal(10 * seconds, c.Joules!.Value, 10 * seconds * 0.05);
        Assert.True(c.Parts[0].Reads >= 5, $"{c.Parts[0].Reads} counter reads inside 250 ms at 10 ms");
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
