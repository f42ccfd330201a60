using System.Buffers;
using System.Net;
using Microsoft.Extensions.Time.Testing;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Host.Tests.Rpc;

/// <summary>
/// docs/rpc.md §5 under hostile and heavy clients, on real sockets against the real serve composition (tiny model):
/// a client hoarding connections cannot lock others out, memory is bounded by the work budget and the per-request token
/// limits, a half-closed connection still gets every reply, an oversized message still gets its error, guessing tokens
/// is slowed per address. Several client addresses come from one process through 127.x.y.z (all loopback on Linux).
/// </summary>
[Collection("rpc")]
[Trait("Category", "Slow")]
public sealed class HostileClientTests(RpcHostFixture fixture)
{
    private static readonly IPAddress HoarderA = IPAddress.Parse("127.0.0.2"), HoarderB = IPAddress.Parse("127.0.0.3"),
        Newcomer = IPAddress.Parse("127.0.0.4");

    /// <summary>A liveness bound (a client that gets no slot fails here), not a timing assertion: the default AdmissionWait.</summary>
    private static readonly TimeSpan FewSeconds = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Hoarders_KeepingIdleConnectionsAlive_CannotLockANewClientOut()
    {
        const int max = 12, perAddress = 8;
        await using var host = fixture.Start(o => o with { Rpc = o.Rpc with { MaxConnections = max, MaxConnectionsPerAddress = perAddress } });
        var endPoint = host.EndPoint;
        var held = new List<RawRpcClient>();
        try
        {
            // One address opens 20 connections: it never holds more than its 8 (each one past them takes the slot of its
            // own longest idle connection); a second address then fills the server and shares it fairly with the first.
            for (int i = 0; i < 20; i++) held.Add(await RawRpcClient.ConnectFromAsync(endPoint, HoarderA));
            Assert.True(await WaitForAsync(() => host.Server.GetMetrics().Connections == perAddress), $"{host.Server.GetMetrics()}");
            for (int i = 0; i < 20; i++) held.Add(await RawRpcClient.ConnectFromAsync(endPoint, HoarderB));
            Assert.True(await WaitForAsync(() => host.Server.GetMetrics().Connections == max), $"{host.Server.GetMetrics()}");

            // The hoarders keep their connections alive with cheap requests (all answered: reclaiming never cuts a call) ...
            var alive = held.Where(c => !c.Closed).ToList();
            var pings = await Task.WhenAll(alive.Select(async c =>
            {
                try { return await c.CallAsync("health", MsgValue.EmptyMap, FewSeconds); }
                catch (InvalidOperationException) { return default(RpcReply?); } // reclaimed before the ping was read
            }));
            Assert.All(pings.OfType<RpcReply>(), r => Assert.False(r.IsError, r.ToString()));
            Assert.True(pings.Count(r => r is not null) >= max - 1, $"only {pings.Count(r => r is not null)} of the held connections answered");

            // ... and still a new client gets a slot, from an idle one, and is served.
            await using var newcomer = await RawRpcClient.ConnectFromAsync(endPoint, Newcomer);
            var served = await newcomer.CallAsync("tokenize", Args.Of(("text", "Hello")), FewSeconds);
            Assert.False(served.IsError, served.ToString());

            var m = host.Server.GetMetrics();
            Assert.True(m.Connections <= max, $"{m}");
            Assert.True(m.ConnectionsReclaimed >= 20 + 20 - max + 1, $"{m}"); // every connection past the limits took an idle slot
            var exposed = (await newcomer.CallAsync("metrics")).Result;
            Assert.Equal(m.ConnectionsReclaimed, Args.Int(exposed, "connections_reclaimed"));
            // No address holds more than its share: the second address took its slots from the heavier first one.
            Assert.True(held.Take(20).Count(c => !c.Closed) <= perAddress && held.Skip(20).Count(c => !c.Closed) <= perAddress);
        }
        finally
        {
            foreach (var c in held) await c.DisposeAsync();
        }
    }

    [Fact]
    public async Task TokenLimits_TooLongTextsAndTokenLists_RefusedAtOnce_WithBothCounts()
    {
        await using var host = fixture.Start();
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        int limit = RpcHostFixture.ContextLength;

        // 4 MiB of text, the message limit: refused before tokenizing (a lower bound of its tokens), no work charged.
        string huge = new('a', (4 << 20) - 64);
        var tooLong = await c.CallAsync("tokenize", Args.Of(("text", huge)));
        Assert.Equal("context_exceeded", tooLong.Code);
        Assert.Contains("at least", tooLong.Message, StringComparison.Ordinal);
        Assert.True(Args.Int(tooLong.Data, "tokens") > limit);
        Assert.Equal(limit, Args.Int(tooLong.Data, "limit"));

        // Within the length bound but over the token limit once tokenized: the exact count.
        var words = await c.CallAsync("tokenize", Args.Of(("text", string.Join(' ', Enumerable.Repeat("dragon", limit + 10)))));
        Assert.Equal("context_exceeded", words.Code);
        Assert.DoesNotContain("at least", words.Message, StringComparison.Ordinal);
        Assert.True(Args.Int(words.Data, "tokens") > limit);

        // detokenize: at most the limit, checked before anything is decoded.
        var ids = Enumerable.Repeat<MsgValue>(100, limit + 1).ToArray();
        Assert.Equal("context_exceeded", (await c.CallAsync("detokenize", Args.Of(("tokens", MsgValue.FromArray(ids))))).Code);
        Assert.False((await c.CallAsync("detokenize", Args.Of(("tokens", MsgValue.FromArray(ids[..limit]))))).IsError);

        // A prompt too long for the context, refused untokenized.
        var prompt = await c.CallAsync("generate", Args.Generate(huge, 1));
        Assert.Equal("context_exceeded", prompt.Code);
        Assert.Contains("at least", prompt.Message, StringComparison.Ordinal);

        // Nothing of it is still charged once replied.
        Assert.True(await WaitForAsync(() => host.Server.GetMetrics().WorkBytes == 0), $"{host.Server.GetMetrics()}");
    }

    [Fact]
    public async Task WorkBudgetFull_NewRequestsOverloadedAtOnce_ServedOnceRoomReturns()
    {
        const int message = 512 << 10, hogCount = 9;
        await using var host = fixture.Start(o => o with
        {
            Rpc = o.Rpc with
            {
                Limits = MsgPackLimits.Default with { MaxMessageBytes = message, MaxStringBytes = message },
                MaxWorkBytes = 8L * message, // the smallest budget these limits allow
                SlowSenderTimeout = TimeSpan.FromMinutes(1),
            },
        });
        // Nine clients each send all but the last 16 bytes of a message of the largest size. Beyond the first 64 KiB a
        // connection may buffer freely, what they buffer is charged: 9 × 448 KiB of the 4 MiB budget.
        byte[] big = Request(1, "tokenize", Args.Of(("text", new string('a', message - 64))));
        Assert.InRange(big.Length, message - 128, message);
        long buffered = hogCount * (big.Length - 16L - (64 << 10));
        var hogs = new List<RawRpcClient>();
        for (int i = 0; i < hogCount; i++)
        {
            var hog = await RawRpcClient.ConnectAsync(host.EndPoint);
            hogs.Add(hog);
            await hog.SendRawAsync(big.AsMemory(0, big.Length - 16));
        }
        try
        {
            Assert.True(await WaitForAsync(() => host.Server.GetMetrics().WorkBytes >= buffered), $"{host.Server.GetMetrics()}");

            // A request charged more than the room left (10 000 values: about 360 KiB once decoded, from 10 KiB) is refused
            // at once while the hogs are still incomplete: overloaded, retriable, with the budget. It is read at all because
            // its bytes are within the free 64 KiB.
            await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
            var medium = Args.Of(("tokens", MsgValue.FromArray(Enumerable.Repeat<MsgValue>(5, 10_000).ToArray())));
            var refused = await c.CallAsync("detokenize", medium, FewSeconds);
            Assert.Equal("overloaded", refused.Code);
            Assert.True(Args.Field(refused.Data, "retriable").AsBool());
            Assert.Equal(8L * message, Args.Int(refused.Data, "limit"));
            Assert.Equal(1, host.Server.GetMetrics().RefusedOverBudget);

            // One hog completes its message; whatever it is told, its bytes leave the budget and the request is taken.
            await hogs[0].SendRawAsync(big.AsMemory(big.Length - 16));
            var hogReply = await hogs[0].WaitReplyAsync(1, FewSeconds);
            Assert.True(hogReply.Code is "overloaded" or "context_exceeded", hogReply.ToString());
            var taken = await c.CallAsync("detokenize", medium, FewSeconds);
            Assert.Equal("context_exceeded", taken.Code); // processed: too many tokens for one request, not refused for memory
        }
        finally
        {
            foreach (var hog in hogs) await hog.DisposeAsync();
        }
        Assert.True(await WaitForAsync(() => host.Server.GetMetrics().WorkBytes == 0), $"budget not returned: {host.Server.GetMetrics()}");
    }

    [Fact]
    public async Task HalfClose_EveryRequestSentBeforeTheFin_IsAnswered_AStreamToItsEnd()
    {
        await using var host = fixture.Start();
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        // As `nc -N` does: the requests and the FIN together, then only reading.
        var output = new ArrayBufferWriter<byte>();
        RpcMessage.WriteRequest(output, 1, "generate", Args.Generate("Once upon a time", 24, stream: true));
        RpcMessage.WriteRequest(output, 2, "tokenize", Args.Of(("text", "Hello")));
        RpcMessage.WriteRequest(output, 3, "generate", Args.Generate("The dragon", 8));
        await c.SendRawAsync(output.WrittenMemory);
        c.ShutdownSend();

        var stream = await c.WaitReplyAsync(1);
        var tokenize = await c.WaitReplyAsync(2);
        var plain = await c.WaitReplyAsync(3);
        Assert.False(stream.IsError || tokenize.IsError || plain.IsError, $"{stream} {tokenize} {plain}");
        Assert.Equal(24, Args.Int(Args.Field(stream.Result, "usage"), "completion_tokens"));
        Assert.Equal(24, c.Notifications.Count(n => n.Method == "generate.token" && n.Params[0].TryGetValue("token", out var t) && t.AsInt64() >= 0));
        Assert.Equal("length", Args.Str(plain.Result, "finish_reason"));
        Assert.True(await c.WaitClosedAsync(TimeSpan.FromSeconds(30)), "the server kept the connection open after answering");
        Assert.Equal(0, host.Scheduler.GetMetrics().Cancelled);
    }

    [Theory]
    [InlineData(true)]  // a str whose declared length is over the limit: refused at its header
    [InlineData(false)] // many small strings: refused when the message grows past the limit
    public async Task OversizedMessage_TheClientStillSending_GetsBadRequest_ThenTheClose(bool declared)
    {
        await using var host = fixture.Start();
        byte[] request = declared
            ? Request(7, "tokenize", Args.Of(("text", new string('x', 5 << 20))))
            : Request(7, "detokenize", Args.Of(("tokens", MsgValue.FromArray(Enumerable.Repeat<MsgValue>(new string('y', 30), 200_000).ToArray()))));
        Assert.True(request.Length > 4 << 20);
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        // Sending and reading at once, as a client that writes its whole request before it reads would not be able to.
        var send = c.SendRawIgnoringResetAsync(request);
        var reply = await c.WaitReplyAsync(7);
        Assert.Equal("bad_request", reply.Code);
        Assert.Contains("limit", reply.Message, StringComparison.Ordinal);
        await send.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(await c.WaitClosedAsync(TimeSpan.FromSeconds(30)), "the connection stayed open after the protocol error");
    }

    [Fact]
    public async Task FailedAuth_BacksOffPerAddress_CountedInMetrics_OtherAddressesUnaffected()
    {
        const string token = "correct horse battery staple";
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var host = fixture.Start(o => o with { AuthToken = token, Rpc = o.Rpc with { TimeProvider = clock } });
        var endPoint = host.EndPoint;
        var attacker = IPAddress.Parse("127.0.0.5");

        // The first five wrong tokens of an address are answered at once (the clock never moves here).
        for (int i = 0; i < 5; i++)
        {
            await using var guess = await RawRpcClient.ConnectFromAsync(endPoint, attacker);
            Assert.Equal("unauthorized", (await guess.CallAsync("auth", Args.Of(("token", $"guess-{i}")), FewSeconds)).Code);
        }

        // The sixth waits its turn, 250 ms of the server's clock, before the token is even checked.
        await using var sixth = await RawRpcClient.ConnectFromAsync(endPoint, attacker);
        var pending = sixth.CallAsync("auth", Args.Of(("token", "guess-5")));
        await Task.Delay(300);
        Assert.False(pending.IsCompleted, "the sixth wrong token was answered without waiting");
        // Meanwhile another address is not slowed, wrong token or right.
        await using (var other = await RawRpcClient.ConnectFromAsync(endPoint, Newcomer))
        {
            Assert.Equal("unauthorized", (await other.CallAsync("auth", Args.Of(("token", "typo")), FewSeconds)).Code);
            Assert.False((await other.CallAsync("auth", Args.Of(("token", token)), FewSeconds)).IsError);
        }
        clock.Advance(TimeSpan.FromMilliseconds(250));
        Assert.Equal("unauthorized", (await pending.WaitAsync(FewSeconds)).Code);

        // A flood from many connections of the address: each guess gets a later turn; those whose turn would be more
        // than 10 s away are refused unchecked at once, saying when to retry.
        var flood = new List<RawRpcClient>();
        for (int i = 0; i < 30; i++) flood.Add(await RawRpcClient.ConnectFromAsync(endPoint, attacker));
        var attempts = flood.Select((f, i) => f.CallAsync("auth", Args.Of(("token", $"flood-{i}")))).ToList();
        await Task.Delay(500);
        var refusedAtOnce = attempts.Where(a => a.IsCompletedSuccessfully).Select(a => a.Result).ToList();
        Assert.NotEmpty(refusedAtOnce);
        Assert.All(refusedAtOnce, r => Assert.True(Args.Field(r.Data, "retry_after_s").TryGetDouble(out double after) && after > 0, r.ToString()));
        for (int step = 0; step < 200 && !attempts.All(a => a.IsCompleted); step++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(250));
            await Task.Delay(5);
        }
        Assert.All(attempts, a => Assert.Equal("unauthorized", a.Result.Code));

        var m = host.Server.GetMetrics();
        Assert.Equal(m.AuthRefused, refusedAtOnce.Count);
        Assert.Equal(5 + 1 + 1 + (30 - refusedAtOnce.Count), m.AuthFailures); // the other address's typo counts too
        Assert.True(m.AuthDelayed >= 30 - refusedAtOnce.Count + 1, $"{m}");
        await using var admin = await RawRpcClient.ConnectFromAsync(endPoint, Newcomer);
        Assert.False((await admin.CallAsync("auth", Args.Of(("token", token)), FewSeconds)).IsError);
        var exposed = (await admin.CallAsync("metrics")).Result;
        Assert.Equal(m.AuthFailures, Args.Int(exposed, "auth_failures"));
        Assert.Equal(m.AuthRefused, Args.Int(exposed, "auth_refused"));
        foreach (var f in flood) await f.DisposeAsync();
    }

    private static byte[] Request(uint id, string method, MsgValue args)
    {
        var output = new ArrayBufferWriter<byte>();
        RpcMessage.WriteRequest(output, id, method, args);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>Polls <paramref name="condition"/> for up to 10 s of real time (a liveness bound, not a timing assertion).</summary>
    private static async Task<bool> WaitForAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) return false;
            await Task.Delay(10);
        }
        return true;
    }
}
