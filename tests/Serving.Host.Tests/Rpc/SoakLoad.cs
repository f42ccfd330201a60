using System.Net;
using Serving.Protocol.MessagePack;

namespace Serving.Host.Tests.Rpc;

/// <summary>
/// The soak of docs/testing.md as a reusable load: rounds of pipelined tokenizes, short generates, malformed messages
/// on throwaway connections and streams abandoned mid-way, all at once, against any server endpoint. Every
/// well-behaved request must be served: a reply that is an error fails the round — except <c>overloaded</c>, which a
/// well-behaved client retries (it says retriable) when <see cref="RetryOverloaded"/> is set, counting the retries.
/// </summary>
internal sealed class SoakLoad(IPEndPoint endPoint, Action<string>? log = null)
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

    private long _served, _retries;

    /// <summary>Retry requests answered <c>overloaded</c> (after 20 ms) instead of failing.</summary>
    public bool RetryOverloaded { get; init; }

    /// <summary>Well-behaved requests answered (tokenizes and generates; malformed and abandoned ones not counted).</summary>
    public long Served => Interlocked.Read(ref _served);

    /// <summary>Requests retried after <c>overloaded</c>.</summary>
    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>
    /// One round of the mix, all at once: pipelined tokenizes, max_tokens=1 generates (each costs a prefill, so
    /// few: CI has 2 cores), malformed messages on throwaway connections, and streams abandoned mid-way.
    /// Returns how many requests (malformed messages included) it sent; logs each part's time.
    /// </summary>
    public async Task<int> RoundAsync(int tokenizes, int generates, int malformed, int abandoned)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        async Task Timed(string name, Task part)
        {
            await part;
            log?.Invoke($"{name}: done after {clock.ElapsedMilliseconds} ms");
        }
        var work = new List<Task>
        {
            Timed("tokenize A", TokenizeAsync(tokenizes / 2, 0)),
            Timed("tokenize B", TokenizeAsync(tokenizes - tokenizes / 2, 1)),
            Timed("generate", GenerateAsync(generates)),
            Timed("malformed", MalformedAsync(malformed)),
            Timed("abandoned", AbandonAsync(abandoned)),
        };
        await Task.WhenAll(work);
        return tokenizes + generates + malformed + abandoned;
    }

    private async Task TokenizeAsync(int count, int salt)
    {
        await using var c = await RawRpcClient.ConnectAsync(endPoint);
        // Pipelined in windows well under the per-connection in-flight limit.
        for (int start = 0; start < count; start += 32)
        {
            var ids = new List<(uint Id, MsgValue Args)>();
            for (int i = start; i < Math.Min(count, start + 32); i++)
            {
                var args = Args.Of(("text", $"Request {i} of round {salt}: once upon a time"));
                ids.Add((await c.SendRequestAsync("tokenize", args), args));
            }
            foreach (var (id, args) in ids)
                await ServedAsync(c, "tokenize", args, await c.WaitReplyAsync(id));
        }
    }

    private async Task GenerateAsync(int count)
    {
        await using var c = await RawRpcClient.ConnectAsync(endPoint);
        for (int start = 0; start < count; start += 16)
        {
            var ids = new List<(uint Id, MsgValue Args)>();
            for (int i = start; i < Math.Min(count, start + 16); i++)
            {
                var args = Args.Generate($"Story {i}:", 1);
                ids.Add((await c.SendRequestAsync("generate", args), args));
            }
            foreach (var (id, args) in ids)
                await ServedAsync(c, "generate", args, await c.WaitReplyAsync(id));
        }
    }

    /// <summary>Asserts the reply is a success, retrying an <c>overloaded</c> one (when allowed) until it is.</summary>
    private async Task ServedAsync(RawRpcClient c, string method, MsgValue args, RpcReply reply)
    {
        while (RetryOverloaded && reply.Code == "overloaded")
        {
            Interlocked.Increment(ref _retries);
            await Task.Delay(20);
            reply = await c.CallAsync(method, args);
        }
        Assert.False(reply.IsError, reply.ToString());
        Interlocked.Increment(ref _served);
    }

    private async Task MalformedAsync(int count)
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

    private async Task AbandonAsync(int count)
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
}
