using Serving.Engine.Tuning;

namespace Serving.Engine.Tests.Tuning;

public sealed class DeviceChooserTests
{
    internal static TuningProfile Profile(string device, double batchOneMs) => new()
    {
        Key = new ProfileKey(device.Split(':')[0], device, "dev", "fp", "1", "b 1", "threads=0", "model"),
        CreatedUtc = DateTime.UnixEpoch,
        Mode = "fast",
        BandwidthBytesPerSecond = 1e10,
        PeakFlopsPerSecond = 1e11,
        DecodeCurve = [new StepPoint(1, TimingStats.From([batchOneMs * 1000])), new StepPoint(2, TimingStats.From([batchOneMs * 1100]))],
        Limits = new BatchLimits(2, "test", 18, "test", 0, 64, null, 1),
    };

    [Fact]
    public void ChoosesTheBestPredictedDecodeRateAndSaysWhy()
    {
        var choice = DeviceChooser.Choose([new("vulkan:0", Profile("vulkan:0", 1000 / 41.0)), new("cpu:0", Profile("cpu:0", 1000 / 63.0))], out string reason);
        Assert.NotNull(choice);
        Assert.Equal("cpu:0", choice!.DeviceId);
        Assert.Equal("vulkan:0 predicted 41 tok/s, cpu:0 63 tok/s → cpu:0", reason);
    }

    [Fact]
    public void DeviceWithoutAProfileIsNamedWithItsProblem()
    {
        var choice = DeviceChooser.Choose([new("cpu:0", Profile("cpu:0", 10)), new("vulkan:0", null, "failed: out of memory")], out string reason);
        Assert.Equal("cpu:0", choice!.DeviceId);
        Assert.Equal("cpu:0 predicted 100 tok/s, vulkan:0 failed: out of memory → cpu:0", reason);
    }

    [Fact]
    public void NoProfileNoChoice()
    {
        Assert.Null(DeviceChooser.Choose([new("cpu:0", null, "failed")], out string reason));
        Assert.Equal("cpu:0 failed", reason);
    }
}
