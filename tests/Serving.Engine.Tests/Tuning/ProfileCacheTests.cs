using System.Text.Json.Nodes;
using Serving.Abstractions;
using Serving.Engine.Tuning;

namespace Serving.Engine.Tests.Tuning;

public sealed class ProfileCacheTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "serving-tune-" + Guid.NewGuid().ToString("N"));
    private readonly ProfileCache _cache;

    public ProfileCacheTests() => _cache = new ProfileCache(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static readonly ProfileKey Key = DeviceChooserTests.Profile("cpu:0", 10).Key;

    [Fact]
    public void RoundTripsEveryTiming()
    {
        var profile = DeviceChooserTests.Profile("cpu:0", 10) with
        {
            Ops =
            [
                new OpTuning(OpKind.MatMul, DataType.Q4_0, 8, 32, 2, "ffn", [new VariantCheck("v", "d", true, true, "T ≥ 0", true, 1e-5, 1e-3, true, "ok")],
                    [new VariantTiming("v", 1, TimingStats.From([3, 1, 2]), 100, 512)], [new KernelChoice(OpKind.MatMul, DataType.Q4_0, 8, 32, 1, "v")], ""),
            ],
        };
        string path = _cache.Save(profile);
        Assert.StartsWith(_dir, path);
        var loaded = _cache.TryLoad(Key, out string? warning);
        Assert.Null(warning);
        Assert.NotNull(loaded);
        Assert.Equal(profile.Key, loaded!.Key);
        Assert.Equal([3.0, 1, 2], loaded.Ops[0].Timings[0].Time.SamplesUs);
        Assert.Equal(profile.Choices, loaded.Choices);
        Assert.Equal(100, loaded.PredictedDecodeTokensPerSecond, 9);
    }

    [Fact]
    public void EveryKeyFieldSelectsAnotherFile()
    {
        string path = _cache.PathFor(Key);
        foreach (var other in new[]
                 {
                     Key with { Backend = "vulkan" }, Key with { Fingerprint = "other" }, Key with { DriverVersion = "2" },
                     Key with { BackendVersion = "b 2" }, Key with { Options = "threads=1" }, Key with { Model = "other model" },
                 })
            Assert.NotEqual(path, _cache.PathFor(other));
        // Informative fields do not change the identity.
        Assert.Equal(path, _cache.PathFor(Key with { DeviceId = "cpu:1", DeviceName = "renamed" }));
    }

    [Fact]
    public void KeyOfARealDeviceDescriptorNamesBackendBuildAndOptions()
    {
        var descriptor = new DeviceDescriptor("cpu", 0, "CPU", "AMD", "linux 6", "fp", DeviceKind.Cpu, 1);
        var shape = ModelShapeTests.Shape();
        var key = ProfileCache.KeyFor(descriptor, typeof(ProfileCache).Assembly, new DeviceOptions(Threads: 2), shape);
        Assert.Equal("fp", key.Fingerprint);
        Assert.Equal("linux 6", key.DriverVersion);
        Assert.Equal("threads=2 reproducible=True", key.Options);
        Assert.StartsWith("Serving.Engine ", key.BackendVersion);
        Assert.Contains(" build ", key.BackendVersion);
        Assert.Equal(shape.Key, key.Model);
    }

    [Fact]
    public void MissingFileIsNoProfileAndNoWarning()
    {
        Assert.Null(_cache.TryLoad(Key, out string? warning));
        Assert.Null(warning);
    }

    [Fact]
    public void CorruptFileIsIgnoredWithAWarning()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllText(_cache.PathFor(Key), "{\"format\": 1, \"key\": ");
        Assert.Null(_cache.TryLoad(Key, out string? warning));
        Assert.Contains("cannot read it", warning);
    }

    [Fact]
    public void FileForAnotherKeyOrFormatIsIgnoredWithAWarning()
    {
        _cache.Save(DeviceChooserTests.Profile("cpu:0", 10));
        string path = _cache.PathFor(Key);
        var stale = Key with { DriverVersion = "2" };
        File.Copy(path, _cache.PathFor(stale));
        Assert.Null(_cache.TryLoad(stale, out string? warning));
        Assert.Contains("made for another device", warning);

        var json = JsonNode.Parse(File.ReadAllText(path))!;
        json["format"] = 99;
        File.WriteAllText(path, json.ToJsonString());
        Assert.Null(_cache.TryLoad(Key, out warning));
        Assert.Contains("format 99", warning);

        json["format"] = 1;
        json["limits"]!["maxBatch"] = 0;
        File.WriteAllText(path, json.ToJsonString());
        Assert.Null(_cache.TryLoad(Key, out warning));
        Assert.Contains("incomplete", warning);
    }

    [Fact]
    public void DefaultFolderFollowsTheEnvironment()
    {
        static Func<string, string?> Env(params (string Name, string Value)[] vars) => name => vars.FirstOrDefault(v => v.Name == name).Value;
        Assert.Equal("/t", ProfileCache.DefaultFolder(Env(("SERVING_TUNE_CACHE", "/t"), ("SERVING_HOME", "/h")), windows: false));
        Assert.Equal(Path.Combine("/h", "tuning"), ProfileCache.DefaultFolder(Env(("SERVING_HOME", "/h"), ("XDG_CACHE_HOME", "/x")), windows: false));
        Assert.Equal(Path.Combine("/x", "serving", "tuning"), ProfileCache.DefaultFolder(Env(("XDG_CACHE_HOME", "/x")), windows: false));
        Assert.Equal(Path.Combine("/l", "serving", "tuning"), ProfileCache.DefaultFolder(Env(("LOCALAPPDATA", "/l"), ("XDG_CACHE_HOME", "/x")), windows: true));
        Assert.EndsWith(Path.Combine(".cache", "serving", "tuning"), ProfileCache.DefaultFolder(Env(("XDG_CACHE_HOME", "relative")), windows: false));
    }
}
