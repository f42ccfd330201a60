using Serving.Host.Benchmarks.Suite;

namespace Serving.Host.Tests.Bench;

/// <summary>bench compare: ratios, and a flag only where the difference is larger than the measured spread.</summary>
public sealed class BenchCompareTests
{
    [Fact]
    public void Stat_IsMeanAndSampleStandardDeviation()
    {
        var s = Stat.Of([2, 4, 4, 4, 5, 5, 7, 9])!;
        Assert.Equal(5, s.Mean);
        Assert.Equal(Math.Sqrt(32.0 / 7), s.StdDev, 12);
        Assert.Equal((8, 2.0, 9.0), (s.N, s.Min, s.Max));
        Assert.Equal(0, Stat.Of([3])!.StdDev);
        Assert.Null(Stat.Of([]));
    }

    [Fact]
    public void DifferencesBeyondTheSpread_AreFlagged_AndThoseWithinItAreNot()
    {
        var a = SampleResults.Create();
        // B: cpu:0 twice as fast in pp (far beyond the spread), decode at batch 1 a hair slower (within it).
        var cpu = a.Devices[0];
        var faster = SampleResults.Test("pp64", "prompt", 1, 64, 1, [0.025, 0.026, 0.0245], [1.0, 1.05, 0.95]);
        var same = SampleResults.Test("tg16@1", "decode", 1, 16, 16, [0.101, 0.109, 0.1], [3.0, 3.2, 3.1]);
        var b = a with { Devices = [cpu with { Tests = [faster, same, cpu.Tests[2]] }, a.Devices[1]] };

        var (rows, notes) = SuiteCompare.Compare(a, b);
        var pp = rows.Single(r => r.Device == "cpu:0" && r.Test == "pp64");
        Assert.True(pp.Significant);
        Assert.Equal(2.0, pp.Ratio, 1);
        Assert.True(pp.EnergySignificant); // tokens per joule doubled too
        var tg = rows.Single(r => r.Device == "cpu:0" && r.Test == "tg16@1");
        Assert.False(tg.Significant);
        Assert.All(rows.Where(r => r.Device == "vulkan:0"), r => Assert.False(r.Significant)); // identical runs
        Assert.Null(rows.First(r => r.Device == "vulkan:0").EnergyA); // not measured there
        Assert.DoesNotContain(notes, n => n.Contains("cpu:0", StringComparison.Ordinal));
    }

    [Fact]
    public void TwoMachines_OneDeviceEach_AreComparedAndTheDifferenceNoted()
    {
        var a = SampleResults.Create() with { Devices = [SampleResults.Device("cpu:0", "EPYC", 1, true, "epyc")] };
        var b = SampleResults.Create() with { Devices = [SampleResults.Device("vulkan:0", "RX 7900", 0.25, false, "rdna3")] };
        var (rows, notes) = SuiteCompare.Compare(a, b);
        Assert.Equal(3, rows.Count);
        Assert.All(rows, r => Assert.Equal("cpu:0 / vulkan:0", r.Device));
        Assert.All(rows, r => Assert.True(r.Significant && r.Ratio > 3.5));
        Assert.Contains(notes, n => n.Contains("different hardware or driver", StringComparison.Ordinal));
    }

    [Fact]
    public void DevicesOnlyInOneRun_AreNoted()
    {
        var a = SampleResults.Create();
        var b = a with { Devices = [a.Devices[0]] };
        var (rows, notes) = SuiteCompare.Compare(a, b);
        Assert.All(rows, r => Assert.Equal("cpu:0", r.Device));
        Assert.Contains("vulkan:0: not in B", notes);
        Assert.Contains("cuda:0: not in B", notes);
    }
}
