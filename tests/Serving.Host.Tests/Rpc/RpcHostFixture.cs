using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Scheduling;
using Serving.Engine.Synthetic;
using Serving.Host.Serve;
using Serving.Protocol.MessagePack;

namespace Serving.Host.Tests.Rpc;

/// <summary>
/// The tiny synthetic model (stories15M shape, Q8_0, real 32000-token llama vocabulary), written once, and a way to
/// start whole servers on it in process on an ephemeral port. The "rpc" collection runs alone: its tests read
/// process-wide memory and handle counts and time-bound cleanups, which other tests running beside them would blur.
/// </summary>
public sealed class RpcHostFixture : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "serving-rpc-" + Guid.NewGuid().ToString("N"));

    public RpcHostFixture()
    {
        Directory.CreateDirectory(_dir);
        ModelPath = Path.Combine(_dir, "tiny-q8_0.gguf");
        SyntheticModel.Create("tiny", DataType.Q8_0, ModelPath, seed: 7);
    }

    public string ModelPath { get; }

    /// <summary>Context per request of the test servers: small, so context_exceeded needs only a short prompt.</summary>
    public const int ContextLength = 128;

    /// <summary>
    /// Starts a server on 127.0.0.1:0. <paramref name="configure"/> adjusts the options (token, queue limits);
    /// the wrappers inject engine faults behind the real RPC path.
    /// </summary>
    internal ServingHost Start(Func<ServingHostOptions, ServingHostOptions>? configure = null,
        Func<IStepModel, IStepModel>? wrapModel = null, Func<ITokenDecoder, ITokenDecoder>? wrapDecoder = null)
    {
        var options = new ServingHostOptions
        {
            ModelPath = ModelPath,
            EndPoint = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0),
            DeviceId = "cpu:0",
            PluginsFolder = Path.Combine(AppContext.BaseDirectory, "plugins"),
            Model = new ModelOptions { ContextLength = ContextLength, KvCacheTokens = 1024, MaxBatchTokens = 128, MaxBatchSequences = 8 },
            Scheduler = new SchedulerOptions { MaxBatchTokens = 128, MaxBatchSequences = 8 },
        };
        return ServingHost.Start(configure?.Invoke(options) ?? options, logs: null, loadProgress: null, wrapModel, wrapDecoder);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}

[CollectionDefinition("rpc", DisableParallelization = true)]
public sealed class RpcCollection : ICollectionFixture<RpcHostFixture>;

/// <summary>Argument maps for the tests, in the wire's own terms.</summary>
internal static class Args
{
    public static MsgValue Of(params (string Key, MsgValue Value)[] entries) =>
        MsgValue.Map(entries.Select(e => ((MsgValue)e.Key, e.Value)).ToArray());

    /// <summary>A generate request: greedy unless <paramref name="extra"/> says otherwise.</summary>
    public static MsgValue Generate(string prompt, int maxTokens, bool stream = false, params (string Key, MsgValue Value)[] extra)
    {
        var list = new List<(string, MsgValue)> { ("prompt", prompt), ("max_tokens", maxTokens), ("temperature", 0.0) };
        if (stream) list.Add(("stream", true));
        foreach (var e in extra)
        {
            list.RemoveAll(x => x.Item1 == e.Key);
            list.Add(e);
        }
        return Of([.. list]);
    }

    public static MsgValue Field(MsgValue map, string key)
    {
        Assert.True(map.TryGetValue(key, out var v), $"'{key}' missing in {map}");
        return v;
    }

    public static long Int(MsgValue map, string key)
    {
        Assert.True(map.TryGetValue(key, out var v), $"'{key}' missing in {map}");
        Assert.True(v.TryGetInt64(out long x), $"'{key}' is not an integer: {v}");
        return x;
    }

    public static string Str(MsgValue map, string key)
    {
        Assert.True(map.TryGetValue(key, out var v), $"'{key}' missing in {map}");
        Assert.True(v.TryGetString(out var s), $"'{key}' is not a string: {v}");
        return s!;
    }
}
