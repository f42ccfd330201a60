using Serving.Host.Serve;
using Serving.Protocol.MessagePack;

namespace Serving.Host.Tests.Rpc;

/// <summary>
/// The parameter cases of docs/testing.md against the real model over RPC: each bad argument gets a typed error reply
/// naming it, and the same connection keeps working afterwards (a semantic error never closes it).
/// </summary>
[Collection("rpc")]
public sealed class ParameterTests(RpcHostFixture fixture) : IAsyncLifetime
{
    private ServingHost _host = null!;

    public Task InitializeAsync()
    {
        _host = fixture.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _host.StopAsync(TimeSpan.Zero);

    public static TheoryData<string, string, MsgValue, string> BadGenerates()
    {
        var data = new TheoryData<string, string, MsgValue, string>();
        void Add(string name, MsgValue args, string code, string mention) => data.Add(name, code, args, mention);
        Add("max_tokens negative", Args.Generate("Hi", -1), "bad_request", "max_tokens");
        Add("max_tokens zero", Args.Generate("Hi", 0), "bad_request", "max_tokens");
        Add("max_tokens huge", Args.Of(("prompt", "Hi"), ("max_tokens", 1L << 40)), "bad_request", "max_tokens");
        Add("max_tokens above int64", Args.Of(("prompt", "Hi"), ("max_tokens", ulong.MaxValue)), "bad_request", "max_tokens");
        Add("max_tokens float", Args.Of(("prompt", "Hi"), ("max_tokens", 4.5)), "bad_request", "max_tokens");
        Add("top_k negative", Args.Generate("Hi", 1, extra: ("top_k", -1)), "bad_request", "top_k");
        Add("top_k huge", Args.Generate("Hi", 1, extra: ("top_k", 1L << 40)), "bad_request", "top_k");
        Add("temperature NaN", Args.Generate("Hi", 1, extra: ("temperature", double.NaN)), "bad_request", "temperature");
        Add("temperature NaN f32", Args.Generate("Hi", 1, extra: ("temperature", MsgValue.FromFloat32(float.NaN))), "bad_request", "temperature");
        Add("temperature infinite", Args.Generate("Hi", 1, extra: ("temperature", double.PositiveInfinity)), "bad_request", "temperature");
        Add("temperature negative", Args.Generate("Hi", 1, extra: ("temperature", -0.5)), "bad_request", "temperature");
        Add("temperature string", Args.Generate("Hi", 1, extra: ("temperature", "hot")), "bad_request", "temperature");
        Add("top_p zero", Args.Generate("Hi", 1, extra: ("top_p", 0.0)), "bad_request", "top_p");
        Add("min_p above one", Args.Generate("Hi", 1, extra: ("min_p", 1.5)), "bad_request", "min_p");
        Add("seed negative", Args.Generate("Hi", 1, extra: ("seed", -3)), "bad_request", "seed");
        Add("unknown key n", Args.Generate("Hi", 1, extra: ("n", 2)), "bad_request", "'n'");
        Add("key repeated", Args.Of(("prompt", "Hi"), ("max_tokens", 1), ("prompt", "Yo")), "bad_request", "more than once");
        Add("unknown key typo", Args.Generate("Hi", 1, extra: ("max_token", 2)), "bad_request", "max_token");
        Add("empty prompt", Args.Of(("prompt", ""), ("max_tokens", 1)), "bad_request", "prompt");
        Add("prompt not a string", Args.Of(("prompt", 42), ("max_tokens", 1)), "bad_request", "prompt");
        Add("no prompt", Args.Of(("max_tokens", 1)), "bad_request", "prompt");
        Add("prompt and tokens", Args.Of(("prompt", "Hi"), ("tokens", MsgValue.FromArray(1, 2))), "bad_request", "tokens");
        Add("empty tokens", Args.Of(("tokens", MsgValue.EmptyArray)), "bad_request", "tokens");
        Add("token id = vocab", Args.Of(("tokens", MsgValue.FromArray(1, 32000))), "bad_request", "tokens");
        Add("token id negative", Args.Of(("tokens", MsgValue.FromArray(1, -1))), "bad_request", "tokens");
        Add("token id huge", Args.Of(("tokens", MsgValue.FromArray(1, ulong.MaxValue))), "bad_request", "tokens");
        Add("token id not int", Args.Of(("tokens", MsgValue.FromArray(1, "x"))), "bad_request", "tokens");
        Add("stop not array", Args.Generate("Hi", 1, extra: ("stop", "\n")), "bad_request", "stop");
        Add("stop empty string", Args.Generate("Hi", 1, extra: ("stop", MsgValue.FromArray(""))), "bad_request", "stop");
        Add("stream not bool", Args.Generate("Hi", 1, extra: ("stream", 1)), "bad_request", "stream");
        Add("unknown model", Args.Generate("Hi", 1, extra: ("model", "llama-70b")), "not_found", "llama-70b");
        return data;
    }

    [Theory]
    [MemberData(nameof(BadGenerates))]
    public async Task Generate_BadArgument_TypedErrorAndConnectionStaysUsable(string name, string code, MsgValue args, string mention)
    {
        await using var c = await RawRpcClient.ConnectAsync(_host.EndPoint);
        var reply = await c.CallAsync("generate", args);
        Assert.True(reply.IsError, $"{name}: expected {code}, got {reply}");
        Assert.Equal(code, reply.Code);
        Assert.Contains(mention, reply.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", reply.Message, StringComparison.Ordinal); // never a stack trace or type name
        Assert.DoesNotContain("   at ", reply.Message, StringComparison.Ordinal);

        var ok = await c.CallAsync("tokenize", Args.Of(("text", "still here")));
        Assert.False(ok.IsError, $"{name}: connection unusable after the error: {ok}");
        Assert.False(c.Closed);
    }

    [Fact]
    public async Task Generate_PromptLongerThanContext_ContextExceededWithBothCounts()
    {
        await using var c = await RawRpcClient.ConnectAsync(_host.EndPoint);
        string prompt = string.Concat(Enumerable.Repeat("Once upon a time there was a dragon. ", 40));
        // Longer than one request may hold (the context): tokenize says so, with the exact count (the text is short
        // enough to be tokenized at all).
        var counted = await c.CallAsync("tokenize", Args.Of(("text", prompt), ("add_bos", true)));
        Assert.Equal("context_exceeded", counted.Code);
        int promptTokens = (int)Args.Int(counted.Data, "tokens");
        Assert.True(promptTokens > RpcHostFixture.ContextLength);

        var reply = await c.CallAsync("generate", Args.Generate(prompt, 4, extra: ("add_bos", true)));
        Assert.Equal("context_exceeded", reply.Code);
        Assert.Equal(promptTokens, Args.Int(reply.Data, "prompt_tokens"));
        Assert.Equal(RpcHostFixture.ContextLength, Args.Int(reply.Data, "context_length"));
        Assert.Contains(promptTokens.ToString(System.Globalization.CultureInfo.InvariantCulture), reply.Message, StringComparison.Ordinal);

        // Token ids: exactly the context is one too many (a position must remain for the generated token).
        var ids = MsgValue.FromArray(Enumerable.Repeat<MsgValue>(100, RpcHostFixture.ContextLength).ToArray());
        var byIds = await c.CallAsync("generate", Args.Of(("tokens", ids), ("max_tokens", 1)));
        Assert.Equal("context_exceeded", byIds.Code);
        Assert.Equal(RpcHostFixture.ContextLength, Args.Int(byIds.Data, "prompt_tokens"));
        Assert.Equal(RpcHostFixture.ContextLength, Args.Int(byIds.Data, "context_length"));

        // One token fewer fits; max_tokens past the context just ends the generation there.
        var fits = MsgValue.FromArray(Enumerable.Repeat<MsgValue>(100, RpcHostFixture.ContextLength - 1).ToArray());
        var done = await c.CallAsync("generate", Args.Of(("tokens", fits), ("max_tokens", 16), ("temperature", 0.0)));
        Assert.False(done.IsError, done.ToString());
        Assert.Equal("length", Args.Str(done.Result, "finish_reason"));
        Assert.Equal(1, Args.Int(Args.Field(done.Result, "usage"), "completion_tokens"));
    }

    [Fact]
    public async Task Cancel_OfAnotherConnectionsRequest_NotFound_AndThatRequestRunsOn()
    {
        await using var owner = await RawRpcClient.ConnectAsync(_host.EndPoint);
        await using var other = await RawRpcClient.ConnectAsync(_host.EndPoint);
        uint id = await owner.SendRequestAsync("generate", Args.Generate("Once upon a time", 6, stream: true));
        await owner.WaitNotificationAsync("generate.token"); // in flight now

        var stranger = await other.CallAsync("cancel", Args.Of(("msgid", id)));
        Assert.Equal("not_found", stranger.Code);
        var never = await owner.CallAsync("cancel", Args.Of(("msgid", 987654)));
        Assert.Equal("not_found", never.Code);
        var badId = await owner.CallAsync("cancel", Args.Of(("msgid", -1)));
        Assert.Equal("bad_request", badId.Code);

        var result = await owner.WaitReplyAsync(id);
        Assert.False(result.IsError, result.ToString());
        Assert.Equal("length", Args.Str(result.Result, "finish_reason"));
        Assert.Equal(6, Args.Int(Args.Field(result.Result, "usage"), "completion_tokens"));
    }

    [Fact]
    public async Task Cancel_OwnStreamingRequest_EndsItAsCancelled()
    {
        await using var c = await RawRpcClient.ConnectAsync(_host.EndPoint);
        long cancelledBefore = _host.Scheduler.GetMetrics().Cancelled;
        uint id = await c.SendRequestAsync("generate", Args.Generate("Once upon a time", 120, stream: true));
        await c.WaitNotificationAsync("generate.token");
        var cancel = await c.CallAsync("cancel", Args.Of(("msgid", id)));
        Assert.False(cancel.IsError, cancel.ToString());

        var result = await c.WaitReplyAsync(id);
        Assert.False(result.IsError, result.ToString());
        Assert.Equal("cancelled", Args.Str(result.Result, "finish_reason"));
        Assert.True(Args.Int(Args.Field(result.Result, "usage"), "completion_tokens") < 120);
        Assert.Equal(cancelledBefore + 1, _host.Scheduler.GetMetrics().Cancelled);
        // The msgid is free again once its reply is out.
        Assert.Equal("not_found", (await c.CallAsync("cancel", Args.Of(("msgid", id)))).Code);
    }

    [Theory]
    [InlineData("tokenize", "bad_request")]
    [InlineData("detokenize", "bad_request")]
    [InlineData("server.info", "bad_request")]
    [InlineData("health", "bad_request")]
    [InlineData("metrics", "bad_request")]
    [InlineData("models.list", "bad_request")]
    [InlineData("devices.list", "bad_request")]
    public async Task EveryMethod_RefusesUnknownKeys(string method, string code)
    {
        await using var c = await RawRpcClient.ConnectAsync(_host.EndPoint);
        var args = method switch
        {
            "tokenize" => Args.Of(("text", "x"), ("bogus", 1)),
            "detokenize" => Args.Of(("tokens", MsgValue.FromArray(1)), ("bogus", 1)),
            _ => Args.Of(("bogus", 1)),
        };
        var reply = await c.CallAsync(method, args);
        Assert.Equal(code, reply.Code);
        Assert.Contains("bogus", reply.Message, StringComparison.Ordinal);
        // A method with arguments lists them; one without says so instead of an empty list.
        if (method is "tokenize" or "detokenize")
            Assert.Matches("allowed: [a-z_]+", reply.Message);
        else
        {
            Assert.Contains("takes no arguments", reply.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("allowed", reply.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task SemanticErrors_ParamsShapeAndUnknownMethod_KeepTheConnection()
    {
        await using var c = await RawRpcClient.ConnectAsync(_host.EndPoint);
        var notMap = await c.WaitReplyAsync(await c.SendRequestWithParamsAsync("tokenize", MsgValue.FromArray("text")));
        Assert.Equal("bad_request", notMap.Code);
        var twoMaps = await c.WaitReplyAsync(await c.SendRequestWithParamsAsync("tokenize", MsgValue.FromArray(MsgValue.EmptyMap, MsgValue.EmptyMap)));
        Assert.Equal("bad_request", twoMaps.Code);
        var noArgs = await c.WaitReplyAsync(await c.SendRequestWithParamsAsync("health", MsgValue.EmptyArray));
        Assert.False(noArgs.IsError, noArgs.ToString()); // [] means no arguments
        var unknown = await c.CallAsync("generate.everything");
        Assert.Equal("not_found", unknown.Code);
        var detok = await c.CallAsync("detokenize", Args.Of(("tokens", MsgValue.FromArray(1, 32000))));
        Assert.Equal("bad_request", detok.Code);

        var tok = await c.CallAsync("tokenize", Args.Of(("text", "Hello world")));
        var text = await c.CallAsync("detokenize", Args.Of(("tokens", Args.Field(tok.Result, "tokens"))));
        Assert.Equal("Hello world", Args.Str(text.Result, "text"));
    }
}
