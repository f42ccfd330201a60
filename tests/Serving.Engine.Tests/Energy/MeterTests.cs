using Serving.Abstractions;
using Serving.Backends.Cpu.Interop;
using Serving.Backends.Vulkan;
using Serving.Engine.Energy;

namespace Serving.Engine.Tests.Energy;

/// <summary>The sysfs meters (RAPL in the Cpu backend, hwmon in the Vulkan backend) and the external meter, on fake
/// sysfs trees, files and commands: this build machine is a VM without powercap or a GPU.</summary>
public sealed class MeterTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "serving-meters-" + Guid.NewGuid().ToString("N"));

    public MeterTests() => Directory.CreateDirectory(_root);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Write(string relative, string text)
    {
        string path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text + "\n");
        return path;
    }

    private static double Joules(IEnergyMeter m)
    {
        Assert.True(m.TryReadJoules(out double j));
        return j;
    }

    [Fact]
    public void Rapl_FindsThePackageZone_AndCountsAcrossAWrapAtMaxEnergyRange()
    {
        Write("intel-rapl:0/name", "package-0");
        Write("intel-rapl:0/max_energy_range_uj", "1000000000");
        string energy = Write("intel-rapl:0/energy_uj", "999000000");
        Write("intel-rapl:0:0/name", "core"); // a subzone: never the package meter
        Write("intel-rapl:0:0/energy_uj", "5");
        var meter = RaplEnergyMeter.TryOpen(_root);
        Assert.NotNull(meter);
        Assert.Equal("rapl:package-0", meter.Source);
        Assert.Equal(EnergyMeterKind.Counter, ((IEnergyMeter)meter).Kind);
        Assert.Equal(0, Joules(meter), 9);
        File.WriteAllText(energy, "999500000");
        Assert.Equal(0.5, Joules(meter), 9);
        File.WriteAllText(energy, "200000"); // wrapped: 0.5 J to the top of the range, 0.2 J after it
        Assert.Equal(1.2, Joules(meter), 9);
        File.WriteAllText(energy, "1200000");
        Assert.Equal(2.2, Joules(meter), 9);
    }

    [Fact]
    public void Rapl_WithoutARange_CountsNothingForADecrease()
    {
        string energy = Write("intel-rapl:0/energy_uj", "5000000");
        var meter = RaplEnergyMeter.TryOpen(_root)!;
        Assert.Equal("rapl:intel-rapl:0", meter.Source); // no name file: the zone's folder name
        Assert.Equal(0, Joules(meter));
        File.WriteAllText(energy, "1000000");
        Assert.Equal(0, Joules(meter)); // a wrap cannot be measured without its range: nothing rather than a guess
        File.WriteAllText(energy, "3000000");
        Assert.Equal(2, Joules(meter), 9);
    }

    [Fact]
    public void Rapl_UnreadableCounter_GivesAMeterWhoseReadsFail_AndNoPowercapGivesNone()
    {
        Assert.Null(RaplEnergyMeter.TryOpen(Path.Combine(_root, "missing")));
        Write("intel-rapl:0/name", "package-0");
        // A directory where the file should be: unreadable even for root (permission bits are not, under root).
        Directory.CreateDirectory(Path.Combine(_root, "intel-rapl:0", "energy_uj"));
        var meter = RaplEnergyMeter.TryOpen(_root);
        Assert.NotNull(meter);
        Assert.False(meter.TryReadJoules(out _));
        using var sampler = new EnergySampler([meter], TimeSpan.FromMilliseconds(5));
        double start = sampler.Now;
        sampler.Mark();
        var reading = sampler.Measure([meter], start, sampler.Now);
        Assert.Null(reading.Joules);
        Assert.StartsWith("rapl:package-0: not readable", reading.Missing);
    }

    private const string Pci = "0000:03:00.0";

    [Fact]
    public void Hwmon_PowerAverage_IsAPowerSampleMeter_LabelledAsSuch()
    {
        Write($"bus/pci/devices/{Pci}/hwmon/hwmon4/name", "amdgpu");
        Write($"bus/pci/devices/{Pci}/hwmon/hwmon4/power1_average", "35000000");
        IEnergyMeter meter = HwmonEnergyMeter.TryOpen(_root, Pci)!;
        Assert.Equal(EnergyMeterKind.PowerSamples, meter.Kind);
        Assert.Equal("hwmon:amdgpu power1_average (power samples)", meter.Source);
        Assert.True(meter.TryReadWatts(out double w));
        Assert.Equal(35, w, 9);
        Assert.False(meter.TryReadJoules(out _));
    }

    [Fact]
    public void Hwmon_EnergyInput_IsPreferred_AsACounterInMicrojoules()
    {
        Write($"bus/pci/devices/{Pci}/hwmon/hwmon4/name", "amdgpu");
        Write($"bus/pci/devices/{Pci}/hwmon/hwmon4/power1_average", "35000000");
        string energy = Write($"bus/pci/devices/{Pci}/hwmon/hwmon4/energy1_input", "1000000");
        IEnergyMeter meter = HwmonEnergyMeter.TryOpen(_root, Pci)!;
        Assert.Equal(EnergyMeterKind.Counter, meter.Kind);
        Assert.Equal("hwmon:amdgpu energy1_input", meter.Source);
        Assert.Equal(0, Joules(meter));
        File.WriteAllText(energy, "3500000");
        Assert.Equal(2.5, Joules(meter), 9);
        Assert.False(meter.TryReadWatts(out _));
    }

    [Fact]
    public void Hwmon_WithoutAPciAddressOrAMeterFile_GivesNone()
    {
        Assert.Null(HwmonEnergyMeter.TryOpen(_root, null)); // lavapipe: no VK_EXT_pci_bus_info
        Assert.Null(HwmonEnergyMeter.TryOpen(_root, Pci));
        Write($"bus/pci/devices/{Pci}/hwmon/hwmon0/name", "amdgpu");
        Write($"bus/pci/devices/{Pci}/hwmon/hwmon0/temp1_input", "40000");
        Assert.Null(HwmonEnergyMeter.TryOpen(_root, Pci));
    }

    [Theory]
    [InlineData("12.5 W", 12.5, EnergyMeterKind.PowerSamples)]
    [InlineData("12.5W", 12.5, EnergyMeterKind.PowerSamples)]
    [InlineData("1500 mW", 1.5, EnergyMeterKind.PowerSamples)]
    [InlineData("0.2 kW", 200, EnergyMeterKind.PowerSamples)]
    [InlineData("1234.5 J", 1234.5, EnergyMeterKind.Counter)]
    [InlineData("2 kJ", 2000, EnergyMeterKind.Counter)]
    [InlineData("0.5 Wh", 1800, EnergyMeterKind.Counter)]
    [InlineData("1e2 watts", 100, EnergyMeterKind.PowerSamples)]
    public void ExternalReadings_ParseWithTheirUnit(string line, double value, EnergyMeterKind kind)
    {
        Assert.True(ExternalMeter.TryParse(line, out double v, out var k, out string? error), error);
        Assert.Equal(value, v, 9);
        Assert.Equal(kind, k);
    }

    [Theory]
    [InlineData("12.5", "has no unit")]
    [InlineData("12.5 MW", "unknown unit 'MW'")]
    [InlineData("watts: 12", "is not a reading")]
    [InlineData("-3 W", "is negative")]
    public void ExternalReadings_WithoutAKnownUnit_AreRefusedSayingWhy(string line, string why)
    {
        Assert.False(ExternalMeter.TryParse(line, out _, out _, out string? error));
        Assert.Contains(why, error);
    }

    [Fact]
    public void ExternalCommand_PrintingWatts_IsAPowerSampleMeter_AndPrintingJoules_ACounter()
    {
        IEnergyMeter watts = ExternalMeter.FromCommand("echo starting; echo 42.5 W", TimeSpan.FromSeconds(10));
        Assert.Equal(EnergyMeterKind.PowerSamples, watts.Kind);
        Assert.True(watts.TryReadWatts(out double w));
        Assert.Equal(42.5, w);

        string counter = Write("counter.txt", "100 J");
        IEnergyMeter joules = ExternalMeter.FromCommand($"cat '{counter}'", TimeSpan.FromSeconds(10));
        Assert.Equal(EnergyMeterKind.Counter, joules.Kind);
        Assert.Equal(100, Joules(joules));
        File.WriteAllText(counter, "130 J\n");
        Assert.Equal(130, Joules(joules));
        File.WriteAllText(counter, "7 W\n"); // the unit changed: not a reading of this meter
        Assert.False(joules.TryReadJoules(out _));
    }

    [Fact]
    public void ExternalCommand_ThatFails_OrPrintsNoUnit_OrHangs_IsRefusedAtOpen()
    {
        Assert.Contains("gave no output", Assert.Throws<InvalidOperationException>(() => ExternalMeter.FromCommand("exit 3", TimeSpan.FromSeconds(10))).Message);
        Assert.Contains("has no unit", Assert.Throws<InvalidOperationException>(() => ExternalMeter.FromCommand("echo 12", TimeSpan.FromSeconds(10))).Message);
        Assert.Contains("gave no output", Assert.Throws<InvalidOperationException>(() => ExternalMeter.FromCommand("sleep 5", TimeSpan.FromMilliseconds(200))).Message);
    }

    [Fact]
    public void ExternalFile_ReadsItsLastLine()
    {
        string path = Write("meter.log", "10 W\n11 W\n\n12 W");
        IEnergyMeter meter = ExternalMeter.FromFile(path);
        Assert.True(meter.TryReadWatts(out double w));
        Assert.Equal(12, w);
        File.AppendAllText(path, "\n13.5 W\n");
        Assert.True(meter.TryReadWatts(out w));
        Assert.Equal(13.5, w);
        File.Delete(path);
        Assert.False(meter.TryReadWatts(out _));
        Assert.Throws<InvalidOperationException>(() => ExternalMeter.FromFile(path));
    }
}
