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
    // Each would close the connection: framing, limit, depth and RPC-shape errors from docs/testing.md.
    private static readonly byte[][] Malformed =
    [
        [0xc1],                                                        // never-used byte
        [0xdb, 0xff, 0xff, 0xff, 0xff, 0x61],                          // str32 longer than any limit
        [0xdd, 0xff, 0xff, 0xff, 0xff],                                // array32 of 4 G elements
        [0xdf, 0x20, 0x00, 0x00, 0x00],                                // map32 of 512 M pairs
        [0xdc, 0x27, 0x0f],                                            // array16 of 9999, no body, then FIN
        [.. Enumerable.Repeat((byte)0x91, 100_000), 0xc0],            // 100 000 nested arrays
        MsgPack.Encode(MsgValue.FromArray(1, 5, MsgValue.Nil, MsgValue.Nil)), // a response sent to the server
        MsgPack.Encode(MsgValue.FromArray(0, 1, "health")),            // 3-element request
        MsgPack.Encode(MsgValue.FromArray(7, 1, "health", MsgValue.EmptyArray)), // unknown type
        MsgPack.Encode("not an array"),
        [.. MsgPack.Encode(MsgValue.FromArray(0, 1, "health", MsgValue.EmptyArray)), 0xc1], // valid request, then garbage
    ];

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

        int warmUp = await RoundAsync(host.EndPoint, tokenizes: 100, generates: 8, malformed: 44, abandoned: 2);
        var before = await SnapshotAsync(observer);
        int soak = await RoundAsync(host.EndPoint, tokenizes: 1500, generates: 32, malformed: 484, abandoned: 8);
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

    /// <summary>
    /// One round of the mix, all at once: pipelined tokenizes, max_tokens=1 generates (each costs a prefill, so
    /// few: CI has 2 cores), malformed messages on throwaway connections, and streams abandoned mid-way.
    /// Returns how many requests (malformed messages included) it sent; prints each part's time.
    /// </summary>
    private async Task<int> RoundAsync(IPEndPoint endPoint, int tokenizes, int generates, int malformed, int abandoned)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        async Task Timed(string name, Task part)
        {
            await part;
            output.WriteLine($"{name}: done after {clock.ElapsedMilliseconds} ms");
        }
        var work = new List<Task>
        {
            Timed("tokenize A", TokenizeAsync(endPoint, tokenizes / 2, 0)),
            Timed("tokenize B", TokenizeAsync(endPoint, tokenizes - tokenizes / 2, 1)),
            Timed("generate", GenerateAsync(endPoint, generates)),
            Timed("malformed", MalformedAsync(endPoint, malformed)),
            Timed("abandoned", AbandonAsync(endPoint, abandoned)),
        };
        await Task.WhenAll(work);
        return tokenizes + generates + malformed + abandoned;
    }

    private static async Task TokenizeAsync(IPEndPoint endPoint, int count, int salt)
    {
        await using var c = await RawRpcClient.ConnectAsync(endPoint);
        // Pipelined in windows well under the per-connection in-flight limit.
        for (int start = 0; start < count; start += 32)
        {
            var ids = new List<uint>();
            for (int i = start; i < Math.Min(count, start + 32); i++)
                ids.Add(await c.SendRequestAsync("tokenize", Args.Of(("text", $"Request {i} of round {salt}: once upon a time"))));
            foreach (uint id in ids)
            {
                var r = await c.WaitReplyAsync(id);
                Assert.False(r.IsError, r.ToString());
            }
        }
    }

    private static async Task GenerateAsync(IPEndPoint endPoint, int count)
    {
        await using var c = await RawRpcClient.ConnectAsync(endPoint);
        for (int start = 0; start < count; start += 16)
        {
            var ids = new List<uint>();
            for (int i = start; i < Math.Min(count, start + 16); i++)
                ids.Add(await c.SendRequestAsync("generate", Args.Generate($"Story {i}:", 1)));
            foreach (uint id in ids)
            {
                var r = await c.WaitReplyAsync(id);
                Assert.False(r.IsError, r.ToString());
            }
        }
    }

    private static async Task MalformedAsync(IPEndPoint endPoint, int count)
    {
        for (int start = 0; start < count; start += 8)
        {
            var batch = Enumerable.Range(start, Math.Min(8, count - start)).Select(async i =>
            {
                await using var c = await RawRpcClient.ConnectAsync(endPoint);
                await c.SendRawIgnoringResetAsync(Malformed[i % Malformed.Length]);
                if (i % Malformed.Length == 4) c.ShutdownSend(); // the truncated one ends inside its message
                Assert.True(await c.WaitClosedAsync(TimeSpan.FromSeconds(10)),
                    $"malformed message {i % Malformed.Length} did not close the connection");
            });
            await Task.WhenAll(batch);
        }
    }

    private static async Task AbandonAsync(IPEndPoint endPoint, int count)
    {
        // All at once: each waits for its first token (a prefill) before its client vanishes.
        await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
        {
            var c = await RawRpcClient.ConnectAsync(endPoint);
            await c.SendRequestAsync("generate", Args.Generate($"Abandoned {i}", 100, stream: true));
            await c.WaitNotificationAsync("generate.token");
            c.Abort();
        }));
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
