using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Scheduling;
using Serving.Protocol.MessagePack;

namespace Serving.Host.Tests.Rpc;

/// <summary>
/// Engine faults behind the real RPC path, injected with decorators around the real model and decoder
/// (ServingHost's test seam): one request's own failure stays its own; a failed forward step fails the requests
/// in flight with a clear error and marks the device not ready, and health says so.
/// </summary>
[Collection("rpc")]
public sealed class EngineFaultTests(RpcHostFixture fixture)
{
    /// <summary>A token id the tiny model's greedy runs below never produce; decoding it throws.</summary>
    private const int Poison = 31999;

    /// <summary>The real decoder, except that any span holding <see cref="Poison"/> throws (a per-request engine bug).</summary>
    private sealed class PoisonDecoder(ITokenDecoder inner) : ITokenDecoder
    {
        public string Decode(ReadOnlySpan<int> tokens) =>
            tokens.Contains(Poison) ? throw new InvalidOperationException("injected decoder fault") : inner.Decode(tokens);

        public bool IsEndOfGeneration(int token) => inner.IsEndOfGeneration(token);
    }

    /// <summary>The real model until <see cref="Arm"/>; then the next forward step throws as a failing device would.</summary>
    private sealed class FailingStepModel(IStepModel inner) : IStepModel
    {
        private volatile bool _armed, _deviceLost;

        /// <summary>The next step throws; with <paramref name="deviceLost"/>, as a device that is gone for good.</summary>
        public void Arm(bool deviceLost = false)
        {
            _deviceLost = deviceLost;
            _armed = true;
        }

        public int VocabSize => inner.VocabSize;
        public int ContextLength => inner.ContextLength;
        public int KvBlockSize => inner.KvBlockSize;
        public int KvBlockCount => inner.KvBlockCount;
        public int MaxBatchTokens => inner.MaxBatchTokens;
        public int MaxBatchSequences => inner.MaxBatchSequences;

        public void Forward(StepBatch batch, Span<float> logits, Span<int> greedyTokens)
        {
            if (_armed) throw new AcceleratorException("cpu:0", "MatMul q8_0", 700, "injected device fault", deviceLost: _deviceLost);
            inner.Forward(batch, logits, greedyTokens);
        }
    }

    [Fact]
    public async Task OneRequestThrowsInsideTheEngine_OnlyItFails_TheNextSucceeds()
    {
        await using var host = fixture.Start(wrapDecoder: d => new PoisonDecoder(d));
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);

        // Both in the scheduler at once, so they share steps: the failure must not spill over.
        uint good = await c.SendRequestAsync("generate", Args.Generate("Once upon a time", 8, stream: true));
        uint bad = await c.SendRequestAsync("generate", Args.Of(("tokens", MsgValue.FromArray(1, 450, Poison)), ("max_tokens", 8)));

        var failed = await c.WaitReplyAsync(bad);
        Assert.Equal("internal", failed.Code);
        Assert.DoesNotContain("injected", failed.Message, StringComparison.Ordinal); // details stay in the log

        var ok = await c.WaitReplyAsync(good);
        Assert.False(ok.IsError, ok.ToString());
        Assert.Equal("length", Args.Str(ok.Result, "finish_reason"));
        Assert.Equal(8, Args.Int(Args.Field(ok.Result, "usage"), "completion_tokens"));

        var next = await c.CallAsync("generate", Args.Generate("The next one", 4));
        Assert.False(next.IsError, next.ToString());
        Assert.Equal(4, Args.Int(Args.Field(next.Result, "usage"), "completion_tokens"));

        var health = (await c.CallAsync("health")).Result;
        Assert.Equal("ok", Args.Str(health, "status"));
        var metrics = (await c.CallAsync("metrics")).Result;
        Assert.Equal(1, Args.Int(metrics, "failed"));
        Assert.Equal(2, Args.Int(metrics, "completed"));
        Assert.Equal(0, Args.Int(metrics, "kv_blocks_used"));
    }

    [Fact]
    public async Task BackendThrowsDuringAStep_InFlightFailClearly_DeviceNotReady_HealthSaysSo()
    {
        FailingStepModel? model = null;
        await using var host = fixture.Start(wrapModel: m => model = new FailingStepModel(m));
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        Assert.Equal("ok", Args.Str((await c.CallAsync("health")).Result, "status"));

        uint a = await c.SendRequestAsync("generate", Args.Generate("Once upon a time", 100, stream: true));
        uint b = await c.SendRequestAsync("generate", Args.Generate("The dragon", 100, stream: true));
        await c.WaitNotificationAsync("generate.token");
        model!.Arm();

        foreach (uint id in new[] { a, b })
        {
            var r = await c.WaitReplyAsync(id);
            Assert.Equal("unavailable", r.Code);
            Assert.Contains("cpu:0", r.Message, StringComparison.Ordinal);
            Assert.Contains("not ready", r.Message, StringComparison.Ordinal);
            Assert.Equal("cpu:0", Args.Str(r.Data, "device"));
        }

        var health = (await c.CallAsync("health")).Result;
        Assert.Equal("faulted", Args.Str(health, "status"));
        Assert.False(Args.Field(health, "ready").AsBool());
        Assert.Contains("cpu:0", Args.Str(health, "reason"), StringComparison.Ordinal);

        var devices = (await c.CallAsync("devices.list")).Result;
        var serving = devices.AsArray().ToArray().Single(d => d.TryGetValue("id", out var id) && id.TryGetString(out var s) && s == "cpu:0");
        Assert.Equal("faulted", Args.Str(serving, "status"));

        var refused = await c.CallAsync("generate", Args.Generate("After the fault", 1));
        Assert.Equal("unavailable", refused.Code);
        // What does not need the device keeps working, on the same connection.
        Assert.False((await c.CallAsync("tokenize", Args.Of(("text", "still here")))).IsError);
        Assert.Equal(2, Args.Int((await c.CallAsync("metrics")).Result, "failed"));
    }

    [Fact]
    public async Task DeviceLost_FailsInFlightClearly_MarksTheDeviceFailed_HealthKeepsAnswering()
    {
        FailingStepModel? model = null;
        await using var host = fixture.Start(wrapModel: m => model = new FailingStepModel(m));
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);

        uint a = await c.SendRequestAsync("generate", Args.Generate("Once upon a time", 100, stream: true));
        uint b = await c.SendRequestAsync("generate", Args.Generate("The dragon", 100, stream: true));
        await c.WaitNotificationAsync("generate.token");
        model!.Arm(deviceLost: true);

        foreach (uint id in new[] { a, b })
        {
            var r = await c.WaitReplyAsync(id);
            Assert.Equal("unavailable", r.Code);
            Assert.Contains("device cpu:0 was lost", r.Message, StringComparison.Ordinal);
            Assert.Contains("marked failed", r.Message, StringComparison.Ordinal);
            Assert.Equal("cpu:0", Args.Str(r.Data, "device"));
        }

        // Health keeps answering, again and again, and says the device was lost.
        for (int i = 0; i < 3; i++)
        {
            var health = (await c.CallAsync("health")).Result;
            Assert.Equal("faulted", Args.Str(health, "status"));
            Assert.False(Args.Field(health, "ready").AsBool());
            Assert.Contains("device cpu:0 was lost", Args.Str(health, "reason"), StringComparison.Ordinal);
        }
        var devices = (await c.CallAsync("devices.list")).Result;
        var serving = devices.AsArray().ToArray().Single(d => d.TryGetValue("id", out var id) && id.TryGetString(out var s) && s == "cpu:0");
        Assert.Equal("failed", Args.Str(serving, "status"));
        Assert.Equal("unavailable", (await c.CallAsync("generate", Args.Generate("After the loss", 1))).Code);
    }
}
