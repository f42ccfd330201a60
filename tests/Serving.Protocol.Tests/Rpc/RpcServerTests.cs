using Microsoft.Extensions.Time.Testing;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;
using Serving.Server;

namespace Serving.Protocol.Tests.Rpc;

/// <summary>Dispatch, auth, cancellation and limits of the RPC server on real sockets (127.0.0.1, port 0).</summary>
public class RpcServerTests
{
    [Fact]
    public async Task BindsLoopbackOnAnEphemeralPortByDefault()
    {
        await using var server = new TestServer();
        Assert.Equal(System.Net.IPAddress.Loopback, server.Server.LocalEndPoint.Address);
        Assert.NotEqual(0, server.Server.LocalEndPoint.Port);
    }

    [Fact]
    public void RegisteringABuiltInOrDuplicateMethod_Throws()
    {
        var server = new RpcServer(new RpcServerOptions());
        Assert.Throws<ArgumentException>(() => server.Register("auth", (_, _) => default));
        Assert.Throws<ArgumentException>(() => server.Register("cancel", (_, _) => default));
        server.Register("x", (_, _) => default);
        Assert.Throws<InvalidOperationException>(() => server.Register("x", (_, _) => default));
    }

    [Fact]
    public async Task RepliesComeInCompletionOrder_NotRequestOrder()
    {
        await using var server = new TestServer();
        await using var client = await server.ConnectAsync();
        await client.RequestAsync(1, "sleep", MsgValue.Map(("ms", 400)));
        await client.RequestAsync(2, "echo", MsgValue.Map(("value", "fast")));
        var first = await client.ReadResponseAsync();
        var second = await client.ReadResponseAsync();
        Assert.Equal(2u, first.MessageId);
        Assert.Equal("fast", first.Result.AsString());
        Assert.Equal(1u, second.MessageId);
        Assert.Equal(400, second.Result.AsInt64());
    }

    [Fact]
    public async Task ManyConcurrentRequests_OnSeveralConnections_AllGetTheirOwnReply()
    {
        await using var server = new TestServer();
        var clients = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => server.ConnectAsync()));
        await Task.WhenAll(clients.Select(async (client, c) =>
        {
            for (uint i = 0; i < 50; i++)
            {
                await client.RequestAsync(i, "echo", MsgValue.Map(("value", $"{c}:{i}")));
            }
            var seen = new HashSet<uint>();
            for (int i = 0; i < 50; i++)
            {
                var r = await client.ReadResponseAsync();
                Assert.Equal($"{c}:{r.MessageId}", r.Result.AsString());
                Assert.True(seen.Add(r.MessageId));
            }
        }));
        foreach (var c in clients)
        {
            await c.DisposeAsync();
        }
    }

    [Fact]
    public async Task StreamingNotifications_PrecedeTheFinalReply_WithoutInterleaving()
    {
        await using var server = new TestServer();
        await using var client = await server.ConnectAsync();
        await client.RequestAsync(9, "stream", MsgValue.Map(("n", 20)));
        await client.RequestAsync(10, "blob", MsgValue.Map(("bytes", 100_000))); // a big frame racing the stream
        int items = 0;
        bool sawFinal = false, sawBlob = false;
        while (!(sawFinal && sawBlob))
        {
            var message = RpcMessage.Parse((await client.ReadAsync())!.Value);
            if (message.Type == RpcMessageType.Notification)
            {
                Assert.False(sawFinal);
                Assert.Equal("stream.item", message.Method);
                var args = RpcArgs.FromParams(message.Params);
                Assert.Equal(9, args.GetInt64("msgid"));
                Assert.Equal(items++, args.GetInt64("i"));
            }
            else if (message.MessageId == 9)
            {
                sawFinal = true;
                Assert.Equal(20, message.Result.AsInt64());
            }
            else
            {
                sawBlob = true;
                Assert.Equal(100_000, message.Result.Count);
            }
        }
        Assert.Equal(20, items);
    }

    [Fact]
    public async Task Cancel_CancelsOnlyTheCallersOwnRequest()
    {
        await using var server = new TestServer();
        await using var owner = await server.ConnectAsync();
        await using var stranger = await server.ConnectAsync();
        await owner.RequestAsync(1, "wait", MsgValue.EmptyMap);
        Assert.Equal(1u, await server.Started.Reader.ReadAsync());

        // Another connection cannot cancel it, even knowing the msgid.
        Assert.Equal(RpcErrorCodes.NotFound, RpcAssert.ErrorCode(await stranger.CallAsync(5, "cancel", MsgValue.Map(("msgid", 1)))));
        Assert.Equal(RpcErrorCodes.NotFound, RpcAssert.ErrorCode(await owner.CallAsync(2, "cancel", MsgValue.Map(("msgid", 99)))));
        Assert.Equal(RpcErrorCodes.BadRequest, RpcAssert.ErrorCode(await owner.CallAsync(3, "cancel", MsgValue.Map(("msgid", -1)))));

        await owner.RequestAsync(4, "cancel", MsgValue.Map(("msgid", 1)));
        var replies = new[] { await owner.ReadResponseAsync(), await owner.ReadResponseAsync() }.ToDictionary(r => r.MessageId);
        RpcAssert.Success(replies[4]);
        Assert.Equal(RpcErrorCodes.Cancelled, RpcAssert.ErrorCode(replies[1]));
        Assert.Equal(1u, await server.Cancelled.Reader.ReadAsync());
    }

    [Fact]
    public async Task Reset_CancelsTheConnectionsRequests()
    {
        await using var server = new TestServer();
        var client = await server.ConnectAsync();
        await client.RequestAsync(7, "wait", MsgValue.EmptyMap);
        Assert.Equal(7u, await server.Started.Reader.ReadAsync());
        client.Abort();
        Assert.Equal(7u, await server.Cancelled.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task HalfClose_RequestsBeforeTheFinRunToTheirEnd_AndAreAnswered_ThenTheServerCloses()
    {
        await using var server = new TestServer();
        await using var client = await server.ConnectAsync();
        await client.RequestAsync(1, "sleep", MsgValue.Map(("ms", 200)));
        await client.RequestAsync(2, "stream", MsgValue.Map(("n", 5)));
        client.ShutdownSend();
        var messages = await client.ReadUntilClosedAsync();
        var replies = messages.Select(RpcMessage.Parse).Where(m => m.Type == RpcMessageType.Response).ToDictionary(m => m.MessageId);
        Assert.Equal(200, replies[1].Result.AsInt64());
        Assert.Equal(5, replies[2].Result.AsInt64());
        Assert.Equal(5, messages.Count(m => RpcMessage.Parse(m).Type == RpcMessageType.Notification));
        Assert.Equal(0, server.Server.ConnectionCount);
    }

    [Fact]
    public async Task DuplicateMsgidInFlight_IsRefused()
    {
        await using var server = new TestServer();
        await using var client = await server.ConnectAsync();
        await client.RequestAsync(1, "wait", MsgValue.EmptyMap);
        await server.Started.Reader.ReadAsync();
        Assert.Equal(RpcErrorCodes.BadRequest, RpcAssert.ErrorCode(await client.CallAsync(1, "echo", MsgValue.Map(("value", 1)))));
    }

    [Fact]
    public async Task InFlightLimit_AnswersOverloaded_AndTheConnectionStaysUsable()
    {
        await using var server = new TestServer(new RpcServerOptions { MaxInFlightPerConnection = 2 });
        await using var client = await server.ConnectAsync();
        await client.RequestAsync(1, "wait", MsgValue.EmptyMap);
        await client.RequestAsync(2, "wait", MsgValue.EmptyMap);
        await server.Started.Reader.ReadAsync();
        await server.Started.Reader.ReadAsync();
        Assert.Equal(RpcErrorCodes.Overloaded, RpcAssert.ErrorCode(await client.CallAsync(3, "echo", MsgValue.Map(("value", 1)))));
        await client.RequestAsync(4, "cancel", MsgValue.Map(("msgid", 1)));
        var replies = new[] { await client.ReadResponseAsync(), await client.ReadResponseAsync() }.Select(r => r.MessageId).Order();
        Assert.Equal([1u, 4u], replies);
        RpcAssert.Success(await client.CallAsync(5, "echo", MsgValue.Map(("value", 1))));
    }

    [Fact]
    public async Task Auth_EveryNonPublicMethodIsRefused_WithoutOrWithAWrongToken()
    {
        await using var server = new TestServer(new RpcServerOptions { AuthToken = "s3cret-token", MaxAuthFailures = 3 });
        await using var client = await server.ConnectAsync();
        uint id = 0;
        foreach (var method in new[] { "echo", "sleep", "wait", "blob", "boom", "stream", "cancel", "no.such.method" })
        {
            Assert.Equal(RpcErrorCodes.Unauthorized, RpcAssert.ErrorCode(await client.CallAsync(++id, method, MsgValue.Map(("value", 1)))));
        }
        RpcAssert.Success(await client.CallAsync(++id, "server.info", MsgValue.EmptyMap)); // public
        Assert.Equal(RpcErrorCodes.Unauthorized, RpcAssert.ErrorCode(await client.CallAsync(++id, "auth", MsgValue.Map(("token", "s3cret-tokem")))));
        Assert.Equal(RpcErrorCodes.Unauthorized, RpcAssert.ErrorCode(await client.CallAsync(++id, "auth", MsgValue.Map(("token", "s3cret")))));
        Assert.Equal(RpcErrorCodes.BadRequest, RpcAssert.ErrorCode(await client.CallAsync(++id, "auth", MsgValue.Map(("tok", "s3cret-token")))));
        Assert.Equal(RpcErrorCodes.Unauthorized, RpcAssert.ErrorCode(await client.CallAsync(++id, "echo", MsgValue.Map(("value", 1)))));

        var ok = await client.CallAsync(++id, "auth", MsgValue.Map(("token", "s3cret-token")));
        Assert.True(ok.Result.AsBool());
        Assert.Equal(5, (await client.CallAsync(++id, "echo", MsgValue.Map(("value", 5)))).Result.AsInt64());

        // Authentication is per connection.
        await using var other = await server.ConnectAsync();
        Assert.Equal(RpcErrorCodes.Unauthorized, RpcAssert.ErrorCode(await other.CallAsync(1, "echo", MsgValue.Map(("value", 1)))));
    }

    [Fact]
    public async Task Auth_RepeatedWrongTokens_CloseTheConnection()
    {
        await using var server = new TestServer(new RpcServerOptions { AuthToken = "right", MaxAuthFailures = 2 });
        await using var client = await server.ConnectAsync();
        Assert.Equal(RpcErrorCodes.Unauthorized, RpcAssert.ErrorCode(await client.CallAsync(1, "auth", MsgValue.Map(("token", "a")))));
        await client.RequestAsync(2, "auth", MsgValue.Map(("token", "b")));
        var messages = await client.ReadUntilClosedAsync();
        Assert.Equal(RpcErrorCodes.Unauthorized, RpcAssert.ErrorCode(RpcMessage.Parse(Assert.Single(messages))));
    }

    [Fact]
    public async Task SlowSender_IsClosed_EvenWhileStillTrickling()
    {
        // The server's clock is a fake one that only this test moves: 50 ms per byte sent.
        var clock = new FakeTimeProvider();
        await using var server = new TestServer(new RpcServerOptions { SlowSenderTimeout = TimeSpan.FromMilliseconds(300), TimeProvider = clock });
        await using var client = await server.ConnectAsync();
        byte[] request = MsgPack.Encode(MsgValue.FromArray(0, 1, "echo", MsgValue.FromArray(MsgValue.Map(("value", new string('a', 400))))));
        // One byte per 50 ms: each byte is progress, but the message as a whole would take ~20 s > 300 ms. The last
        // byte is never sent, so only the slow-sender timeout can end the connection while the trickle goes on.
        var closed = client.ReadUntilClosedAsync();
        int sent = 0;
        while (!closed.IsCompleted && sent < request.Length - 1)
        {
            await client.SendRawAsync([request[sent++]]);
            await Task.Delay(2); // real time for the server to take the byte before the clock moves on
            clock.Advance(TimeSpan.FromMilliseconds(50));
        }
        Assert.Empty(await closed);
        Assert.True(sent < request.Length - 1, "the connection stayed open while the message trickled in");
        Assert.True(server.Log.Has(8));
        // A prompt client on another connection is served meanwhile.
        await using var other = await server.ConnectAsync();
        RpcAssert.Success(await other.CallAsync(1, "server.info", MsgValue.EmptyMap));
    }

    [Fact]
    public async Task IdleConnection_IsClosed_ButOneWithARunningRequestIsNot()
    {
        var clock = new FakeTimeProvider();
        await using var server = new TestServer(new RpcServerOptions { IdleTimeout = TimeSpan.FromSeconds(1), TimeProvider = clock });
        await using var busy = await server.ConnectAsync();
        await busy.RequestAsync(1, "sleep", MsgValue.Map(("ms", 3000))); // sleeps on the server's (fake) clock
        Assert.Equal(1u, await server.Started.Reader.ReadAsync());
        await using var idle = await server.ConnectAsync();
        Assert.True(await WaitUntilAsync(() => server.Server.ConnectionCount == 2), "the second connection was not accepted");

        // 100 ms of server time per step until the busy call (3 s) ends: the idle connection goes after 1 s.
        var idleClosed = idle.ReadUntilClosedAsync();
        var reply = busy.ReadResponseAsync();
        for (int step = 0; !reply.IsCompleted && step < 1000; step++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(100));
            await Task.Delay(5);
        }
        Assert.Empty(await idleClosed);
        Assert.True(server.Log.Has(5, nameof(RpcCloseReason.IdleTimeout)));
        Assert.Equal(3000, (await reply).Result.AsInt64());
    }

    /// <summary>Polls <paramref name="condition"/> for up to 10 s of real time (a liveness bound, not a timing assertion).</summary>
    private static async Task<bool> WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }
            await Task.Delay(10);
        }
        return true;
    }

    [Fact]
    public async Task ClientThatNeverReadsReplies_IsClosed_WithBoundedBuffering()
    {
        const long cap = 256 * 1024;
        await using var server = new TestServer(new RpcServerOptions { MaxPendingWriteBytes = cap, MaxInFlightPerConnection = 1000 });
        await using var reader = await server.ConnectAsync(receiveBufferSize: 4096);
        // 600 pipelined requests for 64 KiB each = ~38 MiB of replies; the socket buffers hold a few MiB at most.
        var requests = new System.Buffers.ArrayBufferWriter<byte>();
        for (uint i = 0; i < 600; i++)
        {
            RpcMessage.WriteRequest(requests, i, "blob", MsgValue.Map(("bytes", 65536)));
        }
        await reader.SendRawAsync(requests.WrittenSpan.ToArray());
        Assert.True(await server.Log.WaitForAsync(9), "the server never gave up on the non-reading client");
        var evt = server.Log.Events.First(e => e.EventId == 9);
        long pending = long.Parse(evt.Message.Split(' ').First(w => w.All(char.IsDigit) && w.Length > 3), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(pending, cap, cap + 2 * 65600); // the cap plus at most the frames written as it was crossed
        // The close is logged just after the overflow (outside the write lock): waited for, not raced.
        Assert.True(await server.Log.WaitForAsync(5, nameof(RpcCloseReason.WriteBackpressure)));
        // Others are served.
        await using var other = await server.ConnectAsync();
        RpcAssert.Success(await other.CallAsync(1, "server.info", MsgValue.EmptyMap));
    }

    [Fact]
    public async Task ConnectionLimit_NewClientsTakeTheSlotsOfTheLongestIdle_BusyOnesAreKept()
    {
        await using var server = new TestServer(new RpcServerOptions { MaxConnections = 4, MaxConnectionsPerAddress = 4 });
        await using var busy = await server.ConnectAsync();
        await busy.RequestAsync(1, "wait", MsgValue.EmptyMap);
        Assert.Equal(1u, await server.Started.Reader.ReadAsync());
        var idle = new List<RawClient>();
        for (int i = 0; i < 3; i++)
        {
            idle.Add(await server.ConnectAsync());
            RpcAssert.Success(await idle[i].CallAsync(1, "server.info", MsgValue.EmptyMap)); // a keep-alive does not make it immune
        }

        // Full: each newcomer gets the slot of the longest idle connection, never the busy one. The newcomers stay
        // connected (and, having just been served, are the most recently active), so the server stays full.
        var late = new List<RawClient>();
        for (int i = 0; i < 3; i++)
        {
            late.Add(await server.ConnectAsync());
            RpcAssert.Success(await late[i].CallAsync(1, "server.info", MsgValue.EmptyMap));
            Assert.Empty(await idle[i].ReadUntilClosedAsync()); // reclaimed, oldest first
        }
        Assert.True(server.Log.Has(14));
        Assert.Equal(3, server.Server.GetMetrics().ConnectionsReclaimed);
        Assert.True(server.Server.ConnectionCount <= 4);
        await busy.RequestAsync(2, "cancel", MsgValue.Map(("msgid", 1)));
        var replies = new[] { await busy.ReadResponseAsync(), await busy.ReadResponseAsync() }.Select(r => r.MessageId).Order();
        Assert.Equal([1u, 2u], replies);
        foreach (var c in idle.Concat(late)) await c.DisposeAsync();
    }

    [Fact]
    public async Task ConnectionLimit_EverySlotBusy_ANewcomerWaitsForOne_ThenIsRefusedWhenNoneFrees()
    {
        var clock = new FakeTimeProvider();
        await using var server = new TestServer(new RpcServerOptions { MaxConnections = 2, TimeProvider = clock });
        var busy = new[] { await server.ConnectAsync(), await server.ConnectAsync() };
        await busy[0].RequestAsync(1, "wait", MsgValue.EmptyMap);
        await busy[1].RequestAsync(1, "wait", MsgValue.EmptyMap);
        await server.Started.Reader.ReadAsync();
        await server.Started.Reader.ReadAsync();

        // Nothing idle to reclaim: the newcomer waits; when a call ends its connection is idle and gives up its slot.
        await using var waiting = await server.ConnectAsync();
        await waiting.RequestAsync(1, "server.info", MsgValue.EmptyMap);
        Assert.True(await WaitUntilAsync(() => server.Server.GetMetrics().ConnectionsWaiting == 1));
        await busy[0].RequestAsync(2, "cancel", MsgValue.Map(("msgid", 1)));
        RpcAssert.Success(await waiting.ReadResponseAsync());
        // The slot came from busy[0] once its call ended, and only after both its replies were sent.
        Assert.Equal([1u, 2u], (await busy[0].ReadUntilClosedAsync()).Select(m => RpcMessage.Parse(m).MessageId).Order());

        // Every slot busy again and none frees within the admission wait: refused (closed) after it.
        await waiting.RequestAsync(2, "wait", MsgValue.EmptyMap);
        await server.Started.Reader.ReadAsync();
        await using var refused = await server.ConnectAsync();
        Assert.True(await WaitUntilAsync(() => server.Server.GetMetrics().ConnectionsWaiting == 1));
        clock.Advance(TimeSpan.FromSeconds(6));
        Assert.Empty(await refused.ReadUntilClosedAsync());
        Assert.Equal(1, server.Server.GetMetrics().ConnectionsRefused);
        Assert.True(server.Log.Has(4));
        foreach (var b in busy) await b.DisposeAsync();
    }

    [Fact]
    public async Task OversizedMessage_ErrorReplyArrives_WhileTheClientIsStillSending()
    {
        await using var server = new TestServer(new RpcServerOptions { Limits = MsgPackLimits.Default with { MaxMessageBytes = 64 << 10, MaxStringBytes = 64 << 10 } });
        await using var client = await server.ConnectAsync();
        byte[] request = MsgPack.Encode(MsgValue.FromArray(0, 5, "echo", MsgValue.FromArray(MsgValue.Map(("value", new string('z', 192 << 10))))));
        var send = client.SendRawAsync(request); // 192 KiB against a 64 KiB limit: refused at the string's header
        var messages = await client.ReadUntilClosedAsync();
        await send.WaitAsync(TimeSpan.FromSeconds(10));
        var reply = RpcMessage.Parse(Assert.Single(messages));
        Assert.Equal(5u, reply.MessageId);
        Assert.Equal(RpcErrorCodes.BadRequest, RpcAssert.ErrorCode(reply));
    }

    [Fact]
    public async Task WorkBudget_RequestBeyondIt_OverloadedAtOnce_AndReturnedWhenCallsEnd()
    {
        var options = new RpcServerOptions { Limits = MsgPackLimits.Default with { MaxMessageBytes = 64 << 10, MaxStringBytes = 64 << 10 }, MaxWorkBytes = 512 << 10 };
        await using var server = new TestServer(options);
        await using var client = await server.ConnectAsync();
        // Each "wait" call holds what its 60 KiB request is charged while it runs (about 245 KiB): the third does not fit.
        string big = new('w', 60 << 10);
        for (uint id = 1; id <= 2; id++) await client.RequestAsync(id, "wait", MsgValue.Map(("pad", big)));
        await server.Started.Reader.ReadAsync();
        await server.Started.Reader.ReadAsync();
        var refused = await client.CallAsync(3, "wait", MsgValue.Map(("pad", big)));
        Assert.Equal(RpcErrorCodes.Overloaded, RpcAssert.ErrorCode(refused));
        Assert.True(RpcException.FromMsgValue(refused.Error).ErrorData.TryGetValue("retriable", out var retriable) && retriable.AsBool());
        Assert.Equal(1, server.Server.GetMetrics().RefusedOverBudget);
        await client.RequestAsync(4, "cancel", MsgValue.Map(("msgid", 1)));
        await client.ReadResponseAsync();
        await client.ReadResponseAsync();
        Assert.True(await WaitUntilAsync(() => server.Server.GetMetrics().WorkBytes < 512 << 10));
        await client.RequestAsync(5, "cancel", MsgValue.Map(("msgid", 2)));
        await client.ReadResponseAsync();
        await client.ReadResponseAsync();
        Assert.True(await WaitUntilAsync(() => server.Server.GetMetrics().WorkBytes == 0), $"{server.Server.GetMetrics()}");
    }

    [Fact]
    public async Task GracefulStop_LetsRunningCallsFinish_ThenRefusesAndCloses()
    {
        var server = new TestServer();
        await using var client = await server.ConnectAsync();
        await client.RequestAsync(1, "sleep", MsgValue.Map(("ms", 300)));
        Assert.Equal(1u, await server.Started.Reader.ReadAsync()); // running before the stop begins
        var stop = server.Server.StopAsync(TimeSpan.FromSeconds(10));
        var reply = await client.ReadResponseAsync();
        RpcAssert.Success(reply);
        Assert.Equal(300, reply.Result.AsInt64());
        await stop;
        Assert.Empty(await client.ReadUntilClosedAsync());
        await Assert.ThrowsAnyAsync<System.Net.Sockets.SocketException>(() => server.ConnectAsync());
    }

    [Fact]
    public async Task GracefulStop_CancelsCallsThatOutliveTheGracePeriod()
    {
        var server = new TestServer();
        await using var client = await server.ConnectAsync();
        await client.RequestAsync(1, "wait", MsgValue.EmptyMap);
        await server.Started.Reader.ReadAsync();
        await server.Server.StopAsync(TimeSpan.FromMilliseconds(200));
        var messages = await client.ReadUntilClosedAsync();
        Assert.Equal(RpcErrorCodes.Cancelled, RpcAssert.ErrorCode(RpcMessage.Parse(Assert.Single(messages))));
    }
}
