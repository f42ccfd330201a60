using System.Diagnostics;
using Serving.Engine.Scheduling;
using Serving.Host.Serve;
using Serving.Protocol.MessagePack;

namespace Serving.Host.Tests.Rpc;

/// <summary>
/// "Faults to survive" of docs/testing.md through the real RPC path: clients that vanish, bursts beyond capacity,
/// shutdown with work in flight. Observed the way an operator would: <c>metrics</c> from a second connection.
/// </summary>
[Collection("rpc")]
[Trait("Category", "Slow")]
public sealed class FaultTests(RpcHostFixture fixture)
{
    /// <summary>
    /// docs/testing.md: a vanished client's KV blocks are freed within a second. They are freed before the next step
    /// (milliseconds); the bound leaves room for a loaded 2-core CI machine running test assemblies in parallel.
    /// </summary>
    private static readonly TimeSpan FreedWithin = TimeSpan.FromSeconds(5);

    private static async Task<MsgValue> MetricsAsync(RawRpcClient c)
    {
        var r = await c.CallAsync("metrics");
        Assert.False(r.IsError, r.ToString());
        return r.Result;
    }

    /// <summary>Polls metrics until <paramref name="done"/> holds; returns how long it took, or null past <paramref name="limit"/>.</summary>
    private static async Task<TimeSpan?> PollAsync(RawRpcClient c, Func<MsgValue, bool> done, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (done(await MetricsAsync(c))) return clock.Elapsed;
            if (clock.Elapsed > limit) return null;
            await Task.Delay(10);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ClientDisconnectsMidStream_RequestCancelled_KvBlocksFreedWithinASecond(bool reset)
    {
        await using var host = fixture.Start();
        await using var observer = await RawRpcClient.ConnectAsync(host.EndPoint);
        var client = await RawRpcClient.ConnectAsync(host.EndPoint);
        await client.SendRequestAsync("generate", Args.Generate("Once upon a time", 120, stream: true));
        await client.WaitNotificationAsync("generate.token");

        var during = await MetricsAsync(observer);
        Assert.Equal(1, Args.Int(during, "running"));
        Assert.True(Args.Int(during, "kv_blocks_used") > 0, $"no KV blocks in use mid-stream: {during}");

        if (reset) client.Abort(); // RST: the client process died
        else await client.DisposeAsync(); // FIN: the client closed its socket
        var took = await PollAsync(observer, m => Args.Int(m, "kv_blocks_used") == 0 && Args.Int(m, "running") == 0, FreedWithin);
        Assert.True(took is not null, $"KV blocks still in use {FreedWithin.TotalSeconds} s after the disconnect: {await MetricsAsync(observer)}");

        var after = await MetricsAsync(observer);
        Assert.Equal(1, Args.Int(after, "cancelled"));
        Assert.Equal(0, Args.Int(after, "completed"));
        Assert.True(Args.Int(after, "generated_tokens") < 120);
    }

    [Fact]
    public async Task ClientDisconnectsWhileQueued_RequestLeavesTheQueue_RunningOneUnharmed()
    {
        // One sequence at a time: the second request has to wait behind the first.
        await using var host = fixture.Start(o => o with { Scheduler = o.Scheduler with { MaxBatchSequences = 1 } });
        await using var observer = await RawRpcClient.ConnectAsync(host.EndPoint);
        await using var runner = await RawRpcClient.ConnectAsync(host.EndPoint);
        uint running = await runner.SendRequestAsync("generate", Args.Generate("Once upon a time", 40, stream: true));
        await runner.WaitNotificationAsync("generate.token");

        var queued = await RawRpcClient.ConnectAsync(host.EndPoint);
        await queued.SendRequestAsync("generate", Args.Generate("The dragon", 40));
        Assert.NotNull(await PollAsync(observer, m => Args.Int(m, "waiting") == 1, TimeSpan.FromSeconds(10)));

        queued.Abort();
        var took = await PollAsync(observer, m => Args.Int(m, "waiting") == 0 && Args.Int(m, "cancelled") == 1, FreedWithin);
        Assert.True(took is not null, $"the queued request of a vanished client is still there: {await MetricsAsync(observer)}");

        // The running request was untouched; once it ends nothing holds KV blocks.
        var done = await runner.WaitReplyAsync(running);
        Assert.Equal("length", Args.Str(done.Result, "finish_reason"));
        Assert.Equal(40, Args.Int(Args.Field(done.Result, "usage"), "completion_tokens"));
        var end = await MetricsAsync(observer);
        Assert.Equal(0, Args.Int(end, "kv_blocks_used"));
        Assert.Equal(1, Args.Int(end, "completed"));
    }

    [Fact]
    public async Task BurstBeyondCapacity_ImmediateRetriableOverloaded_AcceptedWorkCompletes()
    {
        const int queueLimit = 2, burst = 6;
        await using var host = fixture.Start(o => o with
        {
            Scheduler = o.Scheduler with { MaxBatchSequences = 1, MaxQueuedRequests = queueLimit },
        });
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        uint first = await c.SendRequestAsync("generate", Args.Generate("Once upon a time", 30, stream: true));
        await c.WaitNotificationAsync("generate.token"); // admitted: the only running slot is taken

        var ids = new List<uint>();
        for (int i = 0; i < burst; i++) ids.Add(await c.SendRequestAsync("generate", Args.Generate($"Request {i}", 3)));

        // Read replies in arrival order: every refusal must come before any accepted request has finished.
        var order = new List<RpcReply>();
        var pending = new HashSet<uint>(ids) { first };
        while (pending.Count > 0)
        {
            var m = await c.ReadNextAsync() ?? throw new InvalidOperationException("connection closed");
            if (m.Type != Serving.Protocol.Rpc.RpcMessageType.Response) continue;
            pending.Remove(m.MessageId);
            order.Add(new RpcReply(m.MessageId, m.Error, m.Result));
        }
        var refused = order.Where(r => r.Code == "overloaded").ToList();
        Assert.Equal(burst - queueLimit, refused.Count);
        Assert.All(refused, r => Assert.True(Args.Field(r.Data, "retriable").AsBool()));
        int lastRefusal = order.FindLastIndex(r => r.Code == "overloaded");
        int firstSuccess = order.FindIndex(r => !r.IsError);
        Assert.True(lastRefusal < firstSuccess, $"a refusal waited for accepted work: {string.Join(" | ", order)}");

        var accepted = order.Where(r => !r.IsError).ToList();
        Assert.Equal(queueLimit + 1, accepted.Count);
        Assert.All(accepted, r => Assert.Equal("length", Args.Str(r.Result, "finish_reason")));
        var m2 = await MetricsAsync(c);
        Assert.Equal(burst - queueLimit, Args.Int(m2, "refused_overloaded"));
        Assert.Equal(queueLimit + 1, Args.Int(m2, "completed"));

        // Retriable indeed: with the queue empty again the same request is accepted.
        Assert.False((await c.CallAsync("generate", Args.Generate("Request 0", 1))).IsError);
    }

    [Fact]
    public async Task Shutdown_WithWorkInFlight_StopsAccepting_FinishesInFlight()
    {
        var host = fixture.Start();
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        uint a = await c.SendRequestAsync("generate", Args.Generate("Once upon a time", 12, stream: true));
        uint b = await c.SendRequestAsync("generate", Args.Generate("The dragon", 12, stream: true));
        await c.WaitNotificationAsync("generate.token");

        var stop = host.StopAsync(TimeSpan.FromSeconds(30));
        // While draining: new work on an open connection is refused as unavailable…
        var late = await c.CallAsync("generate", Args.Generate("Too late", 1));
        Assert.Equal("unavailable", late.Code);
        // …and in-flight requests run to their end, replies delivered before the connection closes.
        foreach (uint id in new[] { a, b })
        {
            var r = await c.WaitReplyAsync(id);
            Assert.False(r.IsError, r.ToString());
            Assert.Equal("length", Args.Str(r.Result, "finish_reason"));
            Assert.Equal(12, Args.Int(Args.Field(r.Result, "usage"), "completion_tokens"));
        }
        Assert.True(await c.WaitClosedAsync(TimeSpan.FromSeconds(30)), "the connection stayed open after shutdown");
        await stop.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(SchedulerState.Disposed, host.Scheduler.State);
        var m = host.Scheduler.GetMetrics();
        Assert.Equal(2, m.Completed);
        Assert.Equal(0, m.Cancelled);
        await Assert.ThrowsAnyAsync<System.Net.Sockets.SocketException>(() => RawRpcClient.ConnectAsync(host.EndPoint));
    }

    [Fact]
    public async Task Shutdown_GraceOver_InFlightCancelled_RepliesStillSent()
    {
        var host = fixture.Start();
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        uint a = await c.SendRequestAsync("generate", Args.Generate("Once upon a time", 120, stream: true));
        await c.WaitNotificationAsync("generate.token");

        await host.StopAsync(TimeSpan.Zero).WaitAsync(TimeSpan.FromSeconds(30));
        var r = await c.WaitReplyAsync(a);
        Assert.False(r.IsError, r.ToString());
        Assert.Equal("cancelled", Args.Str(r.Result, "finish_reason"));
        Assert.Equal(1, host.Scheduler.GetMetrics().Cancelled);
    }
}
