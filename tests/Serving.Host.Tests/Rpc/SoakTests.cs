using System.Net;
using Serving.Host.Serve;
using Serving.Protocol.MessagePack;

namespace Serving.Host.Tests.Rpc;

/// <summary>
/// docs/testing.md soak: a couple of thousand requests, malformed ones included, and memory and handle counts stay
/// flat. Compared after a warm-up round (pools, JIT, caches filled) against the end, with generous bounds: a
/// leak per request or per connection would exceed them many times over; noise does not.
/// </summary>
[Collection("rpc")]
[Trait("Category", "Slow")]
public sealed class SoakTests(RpcHostFixture fixture, Xunit.Abstractions.ITestOutputHelper output)
{
    private sealed record Snapshot(long WorkingSet, long ManagedHeap, long Handles, long Connections)
    {
        public override string ToString() =>
            $"working set {WorkingSet / 1048576.0:0.0} MiB, managed heap {ManagedHeap / 1048576.0:0.0} MiB, {Handles} handles, {Connections} connections";
    }

    [Fact]
    public async Task Soak_TwoThousandMixedRequests_MemoryAndHandlesStayFlat()
    {
        await using var host = fixture.Start();
        await using var observer = await RawRpcClient.ConnectAsync(host.EndPoint);

        var load = new SoakLoad(host.EndPoint, output.WriteLine);
        int warmUp = await load.RoundAsync(tokenizes: 100, generates: 8, malformed: 44, abandoned: 2);
        var before = await SnapshotAsync(observer);
        int soak = await load.RoundAsync(tokenizes: 1500, generates: 32, malformed: 484, abandoned: 8);
        var after = await SnapshotAsync(observer);

        Assert.True(warmUp + soak >= 2000, $"only {warmUp + soak} requests");
        string report = $"before: {before}; after: {after}";
        output.WriteLine(report);
        Assert.Equal(1, after.Connections); // only the observer: every throwaway connection was closed and forgotten
        Assert.True(after.Handles <= before.Handles + 32, $"handles grew: {report}");
        Assert.True(after.ManagedHeap <= before.ManagedHeap + (16L << 20), $"managed heap grew: {report}");
        Assert.True(after.WorkingSet <= before.WorkingSet + (96L << 20), $"working set grew: {report}");

        var m = (await observer.CallAsync("metrics")).Result;
        Assert.Equal(0, Args.Int(m, "kv_blocks_used"));
        Assert.Equal(0, Args.Int(m, "running"));
        Assert.Equal(0, Args.Int(m, "waiting"));
        Assert.Equal(0, Args.Int(m, "failed"));
        Assert.Equal(8 + 32, Args.Int(m, "completed"));
        Assert.Equal(2 + 8, Args.Int(m, "cancelled"));
    }

    private static async Task<Snapshot> SnapshotAsync(RawRpcClient observer)
    {
        // Let the closes settle (connections leave the server's table after their loops end), then collect, so
        // the managed heap reads live objects only.
        for (int i = 0; i < 200; i++)
        {
            var m0 = (await observer.CallAsync("metrics")).Result;
            if (Args.Int(m0, "connections") == 1 && Args.Int(m0, "running") == 0 && Args.Int(m0, "waiting") == 0) break;
            await Task.Delay(25);
        }
        for (int i = 0; i < 2; i++)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }
        var m = (await observer.CallAsync("metrics")).Result;
        return new Snapshot(Args.Int(m, "working_set_bytes"), Args.Int(m, "managed_heap_bytes"), Args.Int(m, "handles"), Args.Int(m, "connections"));
    }
}
