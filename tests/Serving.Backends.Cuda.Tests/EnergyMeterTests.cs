using Serving.Backends.Cuda.Interop;

namespace Serving.Backends.Cuda.Tests;

/// <summary>The NVML energy meter: joules from the GPU's millijoule counter, and no meter (never an estimate from power
/// samples) where the GPU has no counter.</summary>
public sealed class EnergyMeterTests
{
    [Fact]
    public void The_counter_reads_in_joules_and_grows_by_the_energy_used()
    {
        var nvml = new FakeNvml { EnergyMillijoules = [5_000_000, 5_000_250, 5_012_750] };
        var meter = NvmlEnergyMeter.TryCreate(nvml, 42)!; // first reading: the origin, 5000 J since the driver loaded
        Assert.Equal("nvml", meter.Source);
        Assert.True(meter.TryReadJoules(out double a));
        Assert.True(meter.TryReadJoules(out double b));
        Assert.Equal(5000.25, a, 9);
        Assert.Equal(12.5, b - a, 9);
    }

    [Fact]
    public void A_failed_read_says_so_and_the_next_one_continues()
    {
        var nvml = new FakeNvml { EnergyMillijoules = [1000, 1000, 3000, 4000], FailEnergyAt = 2 };
        var meter = NvmlEnergyMeter.TryCreate(nvml, 42)!;
        Assert.True(meter.TryReadJoules(out double a));
        Assert.False(meter.TryReadJoules(out _));
        Assert.True(meter.TryReadJoules(out double c));
        Assert.Equal(1.0, a, 9);
        Assert.Equal(4.0, c, 9);
    }

    [Fact]
    public void A_counter_that_restarts_counts_on_from_its_new_origin()
    {
        var nvml = new FakeNvml { EnergyMillijoules = [9000, 10_000, 500, 1500] };
        var meter = NvmlEnergyMeter.TryCreate(nvml, 42)!;
        meter.TryReadJoules(out double before); // 10 J
        meter.TryReadJoules(out double restarted); // + 0.5 J used since the restart
        meter.TryReadJoules(out double after);
        Assert.Equal(10.0, before, 9);
        Assert.Equal(10.5, restarted, 9);
        Assert.Equal(11.5, after, 9);
    }

    [Fact]
    public void Power_readings_alone_give_no_meter_and_are_reported_as_samples()
    {
        var nvml = new FakeNvml { PowerMilliwatts = [71_300] };
        Assert.Null(NvmlEnergyMeter.TryCreate(nvml, 42));
        string line = NvmlEnergyMeter.Describe(nvml, 42);
        Assert.Contains("no total-energy counter", line, StringComparison.Ordinal);
        Assert.Contains("71.3 W now, a sample", line, StringComparison.Ordinal);
        Assert.Contains("no energy meter", line, StringComparison.Ordinal);
        Assert.Equal(71.3, NvmlEnergyMeter.ReadPowerWatts(nvml, 42)!.Value, 9);
    }

    [Fact]
    public void Neither_counter_nor_power_is_said_plainly()
    {
        var nvml = new FakeNvml();
        Assert.Null(NvmlEnergyMeter.TryCreate(nvml, 42));
        Assert.Null(NvmlEnergyMeter.ReadPowerWatts(nvml, 42));
        Assert.Contains("neither", NvmlEnergyMeter.Describe(nvml, 42), StringComparison.Ordinal);
    }
}
