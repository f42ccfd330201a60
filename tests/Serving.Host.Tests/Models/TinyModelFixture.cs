using Serving.Abstractions;
using Serving.Engine.Synthetic;
using Serving.Host.Plugins;

namespace Serving.Host.Tests.Models;

/// <summary>Synthetic tiny models (created once per test run) and an open Cpu device.</summary>
public sealed class TinyModelFixture : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "serving-tiny-" + Guid.NewGuid().ToString("N"));
    private readonly Dictionary<DataType, string> _paths = [];
    private readonly object _gate = new();

    public TinyModelFixture()
    {
        Directory.CreateDirectory(_dir);
        var registry = DeviceRegistry.Discover(Path.Combine(AppContext.BaseDirectory, "plugins"));
        Device = registry.Open("cpu:0");
    }

    public IAccelerator Device { get; }

    /// <summary>Path of the tiny model with <paramref name="type"/> weights, created on first use.</summary>
    public string PathOf(DataType type)
    {
        lock (_gate)
        {
            if (!_paths.TryGetValue(type, out string? path))
            {
                path = System.IO.Path.Combine(_dir, $"tiny-{type.Name()}.gguf");
                SyntheticModel.Create("tiny", type, path, seed: 7);
                _paths[type] = path;
            }
            return path;
        }
    }

    public void Dispose()
    {
        Device.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}

[CollectionDefinition("tiny")]
public sealed class TinyModelCollection : ICollectionFixture<TinyModelFixture>;
