using Serving.Client;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Host.Tests.Client;

/// <summary>
/// The client against a scripted peer: exact wire behaviour that a real server cannot be made to show on demand
/// (replies out of order, interleaved streams, a dropped connection, malformed bytes).
/// </summary>
public sealed class ClientWireTests
{
    private static async Task<(FakeServer Server, ServingClient Client)> ConnectAsync(ServingClientOptions? options = null)
    {
        var server = new FakeServer();
        var accept = server.AcceptAsync();
        var client = await ServingClient.ConnectAsync("127.0.0.1", server.Port, options ?? new ServingClientOptions());
        await accept;
        return (server, client);
    }

    private static MsgValue Args(RpcMessage m) => RpcArgs.FromParams(m.Params).Map;

    [Fact]
    public async Task Replies_out_of_order_reach_their_own_callers()
    {
        var (server, client) = await ConnectAsync();
        await using var _ = server;
        await using var __ = client;

        var first = client.TokenizeAsync("first");
        var a = await server.ReadAsync();
        var second = client.TokenizeAsync("second");
        var b = await server.ReadAsync();
        Assert.NotEqual(a.MessageId, b.MessageId);
        Assert.Equal("first", Args(a).TryGetValue("text", out var t) ? t.AsString() : null);

        // The second request is answered first.
        await server.ReplyAsync(b.MessageId, MsgValue.Map(("tokens", MsgValue.FromArray(2, 2))));
        Assert.Equal(new[] { 2, 2 }, await second);
        Assert.False(first.IsCompleted);
        await server.ReplyAsync(a.MessageId, MsgValue.Map(("tokens", MsgValue.FromArray(1))));
        Assert.Equal(new[] { 1 }, await first);
        Assert.Equal(0, client.PendingCalls);
    }

    [Fact]
    public async Task Interleaved_token_notifications_are_routed_to_their_streams()
    {
        var (server, client) = await ConnectAsync();
        await using var _ = server;
        await using var __ = client;

        async Task<(string Text, List<int> Ids, GenerateResult? Final)> Collect(string prompt)
        {
            var text = new System.Text.StringBuilder();
            var ids = new List<int>();
            GenerateResult? final = null;
            await foreach (var e in client.GenerateStreamAsync(new GenerateOptions { Prompt = prompt, MaxTokens = 4 }))
            {
                if (e.IsFinal) final = e.Result;
                else { text.Append(e.Text); ids.Add(e.TokenId); }
            }
            return (text.ToString(), ids, final);
        }

        var one = Collect("one");
        var a = await server.ReadAsync();
        var two = Collect("two");
        var b = await server.ReadAsync();
        Assert.True(Args(a).TryGetValue("stream", out var stream) && stream.AsBool());

        await server.NotifyTokenAsync(a.MessageId, 10, "a");
        await server.NotifyTokenAsync(b.MessageId, 20, "x");
        await server.NotifyTokenAsync(999_999, 5, "nobody's"); // a notification for no call is ignored
        await server.NotifyTokenAsync(a.MessageId, 11, "b");
        await server.NotifyTokenAsync(b.MessageId, 21, "y");
        await server.ReplyAsync(b.MessageId, FakeServer.GenerateResult("xy", 20, 21));
        await server.ReplyAsync(a.MessageId, FakeServer.GenerateResult("ab", 10, 11));

        var r1 = await one;
        var r2 = await two;
        Assert.Equal("ab", r1.Text);
        Assert.Equal([10, 11], r1.Ids);
        Assert.Equal("xy", r2.Text);
        Assert.Equal([20, 21], r2.Ids);
        Assert.Equal("ab", r1.Final!.Text);
        Assert.Equal([20, 21], r2.Final!.TokenIds);
        Assert.Equal(1.5, r2.Final.Usage.TtftMs);
    }

    [Fact]
    public async Task Only_the_generate_options_that_are_set_are_sent()
    {
        var (server, client) = await ConnectAsync();
        await using var _ = server;
        await using var __ = client;

        var minimal = client.GenerateAsync(new GenerateOptions { Prompt = "Hi", MaxTokens = 8 });
        var m = await server.ReadAsync();
        Assert.Equal("generate", m.Method);
        Assert.Equal(["max_tokens", "prompt"], Keys(Args(m)));
        await server.ReplyAsync(m.MessageId, FakeServer.GenerateResult("ok", 1));
        Assert.Equal("ok", (await minimal).Text);

        var full = client.GenerateAsync(new GenerateOptions
        {
            Tokens = [1, 2, 3], MaxTokens = 4, Temperature = 0.5, TopK = 10, TopP = 0.9, MinP = 0.1, RepeatPenalty = 1.1,
            RepeatLastN = 32, Seed = ulong.MaxValue, Stop = ["\n"], AddBos = false, Model = "tiny",
        });
        m = await server.ReadAsync();
        var args = Args(m);
        Assert.Equal(["add_bos", "max_tokens", "min_p", "model", "repeat_last_n", "repeat_penalty", "seed", "stop", "temperature", "tokens", "top_k", "top_p"],
            Keys(args));
        Assert.True(args.TryGetValue("seed", out var seed) && seed.TryGetUInt64(out ulong s) && s == ulong.MaxValue);
        await server.ReplyAsync(m.MessageId, FakeServer.GenerateResult("ok", 1));
        await full;
    }

    private static string[] Keys(MsgValue map) => [.. map.AsMap().ToArray().Select(e => e.Key.AsString()).Order(StringComparer.Ordinal)];

    [Fact]
    public async Task Error_replies_become_RpcException_and_the_connection_stays_usable()
    {
        var (server, client) = await ConnectAsync();
        await using var _ = server;
        await using var __ = client;

        var call = client.DetokenizeAsync([1]);
        var m = await server.ReadAsync();
        await server.ReplyErrorAsync(m.MessageId, RpcErrorCodes.Overloaded, "busy");
        var e = await Assert.ThrowsAsync<RpcException>(() => call);
        Assert.Equal((RpcErrorCodes.Overloaded, "busy", true), (e.Code, e.Message, e.IsRetriable));

        var next = client.DetokenizeAsync([1]);
        m = await server.ReadAsync();
        await server.ReplyAsync(m.MessageId, MsgValue.Map(("text", "fine")));
        Assert.Equal("fine", await next);
    }

    [Fact]
    public async Task A_lost_connection_faults_every_pending_call_with_IOException()
    {
        var (server, client) = await ConnectAsync();
        await using var _ = server;
        await using var __ = client;

        var unary = client.MetricsAsync();
        await server.ReadAsync();
        var stream = client.GenerateStreamAsync(new GenerateOptions { Prompt = "x" }).GetAsyncEnumerator();
        var firstEvent = stream.MoveNextAsync().AsTask();
        await server.ReadAsync();
        server.CloseConnection();

        var e1 = await Assert.ThrowsAsync<IOException>(() => unary);
        var e2 = await Assert.ThrowsAsync<IOException>(() => firstEvent);
        Assert.Contains("closed by the server", e1.Message);
        Assert.Contains("closed by the server", e2.Message);
        Assert.False(client.IsConnected);
        await Assert.ThrowsAsync<IOException>(() => client.HealthAsync());
        await stream.DisposeAsync();
    }

    [Fact]
    public async Task Malformed_bytes_from_the_server_close_the_connection_with_a_clear_error()
    {
        var (server, client) = await ConnectAsync();
        await using var _ = server;
        await using var __ = client;

        var call = client.HealthAsync();
        await server.ReadAsync();
        await server.SendRawAsync([0xc1]); // the never-used byte: a MessagePack stream cannot resynchronize after it
        var e = await Assert.ThrowsAsync<IOException>(() => call);
        Assert.Contains("malformed", e.Message);
        Assert.False(client.IsConnected);
    }

    [Fact]
    public async Task Cancelling_a_call_throws_at_once_and_sends_cancel_for_its_msgid()
    {
        var (server, client) = await ConnectAsync();
        await using var _ = server;
        await using var __ = client;

        using var cts = new CancellationTokenSource();
        var call = client.GenerateAsync(new GenerateOptions { Prompt = "long" }, cts.Token);
        var request = await server.ReadAsync();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);

        var cancel = await server.ReadAsync();
        Assert.Equal((RpcMessageType.Notification, "cancel"), (cancel.Type, cancel.Method));
        Assert.True(Args(cancel).TryGetValue("msgid", out var id) && id.AsInt64() == request.MessageId);

        // The server's late reply is dropped; the msgid was held until then, and the client keeps working.
        Assert.Equal(1, client.PendingCalls);
        await server.ReplyErrorAsync(request.MessageId, RpcErrorCodes.Cancelled, "cancelled");
        var next = client.DetokenizeAsync([1]);
        var m = await server.ReadAsync();
        Assert.NotEqual(request.MessageId, m.MessageId);
        await server.ReplyAsync(m.MessageId, MsgValue.Map(("text", "t")));
        Assert.Equal("t", await next);
        Assert.Equal(0, client.PendingCalls);
    }

    [Fact]
    public async Task A_stream_whose_consumer_falls_behind_fails_alone_and_is_cancelled_on_the_server()
    {
        var (server, client) = await ConnectAsync(new ServingClientOptions { MaxBufferedStreamEvents = 2 });
        await using var _ = server;
        await using var __ = client;

        var stream = client.GenerateStreamAsync(new GenerateOptions { Prompt = "x" }).GetAsyncEnumerator();
        var first = stream.MoveNextAsync().AsTask();
        var request = await server.ReadAsync();
        for (int i = 0; i < 4; i++) await server.NotifyTokenAsync(request.MessageId, i, "t");

        var cancel = await server.ReadAsync();
        Assert.Equal("cancel", cancel.Method);
        // What was buffered before the overflow is still delivered (how much depends on how far the consumer got
        // before the third unread token arrived), then the stream fails.
        Assert.True(await first);
        int delivered = 1;
        await Assert.ThrowsAsync<StreamOverflowException>(async () => { while (await stream.MoveNextAsync()) delivered++; });
        Assert.InRange(delivered, 2, 3);
        await stream.DisposeAsync();

        // Other calls on the connection are unaffected.
        var health = client.DetokenizeAsync([1]);
        var m = await server.ReadAsync();
        await server.ReplyAsync(m.MessageId, MsgValue.Map(("text", "ok")));
        Assert.Equal("ok", await health);
    }
}
