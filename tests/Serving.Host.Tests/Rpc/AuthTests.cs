using Serving.Host.Serve;
using Serving.Protocol.MessagePack;

namespace Serving.Host.Tests.Rpc;

/// <summary>With a token configured, every method but the public list is refused until <c>auth {token}</c> succeeds.</summary>
[Collection("rpc")]
public sealed class AuthTests(RpcHostFixture fixture) : IAsyncLifetime
{
    private const string Token = "correct horse battery staple";
    private ServingHost _host = null!;

    public Task InitializeAsync()
    {
        _host = fixture.Start(o => o with { AuthToken = Token });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _host.StopAsync(TimeSpan.Zero);

    /// <summary>Every method the server offers that needs the token, with valid arguments.</summary>
    public static TheoryData<string> Protected() =>
        new() { "devices.list", "models.list", "tokenize", "detokenize", "generate", "cancel", "metrics", "no.such.method" };

    private static MsgValue ValidArgs(string method) => method switch
    {
        "tokenize" => Args.Of(("text", "Hi")),
        "detokenize" => Args.Of(("tokens", MsgValue.FromArray(1, 2))),
        "generate" => Args.Generate("Hi", 1),
        "cancel" => Args.Of(("msgid", 1)),
        _ => MsgValue.EmptyMap,
    };

    [Theory]
    [MemberData(nameof(Protected))]
    public async Task ProtectedMethod_WithoutOrWithWrongToken_Unauthorized_ThenWorksAfterAuth(string method)
    {
        await using var c = await RawRpcClient.ConnectAsync(_host.EndPoint);
        var anonymous = await c.CallAsync(method, ValidArgs(method));
        Assert.Equal("unauthorized", anonymous.Code);

        var wrong = await c.CallAsync("auth", Args.Of(("token", Token + "x")));
        Assert.Equal("unauthorized", wrong.Code);
        var stillRefused = await c.CallAsync(method, ValidArgs(method));
        Assert.Equal("unauthorized", stillRefused.Code);

        var ok = await c.CallAsync("auth", Args.Of(("token", Token)));
        Assert.False(ok.IsError, ok.ToString());
        var after = await c.CallAsync(method, ValidArgs(method));
        // Authenticated, each method now gets past the door: it succeeds, or fails for its own reason.
        string? expected = method switch { "cancel" => "not_found", "no.such.method" => "not_found", _ => null };
        Assert.Equal(expected, after.Code);
    }

    [Theory]
    [InlineData("server.info")]
    [InlineData("health")]
    public async Task PublicMethod_WorksWithoutToken(string method)
    {
        await using var c = await RawRpcClient.ConnectAsync(_host.EndPoint);
        var reply = await c.CallAsync(method);
        Assert.False(reply.IsError, reply.ToString());
        if (method == "server.info") Assert.True(Args.Field(reply.Result, "auth_required").AsBool());
    }

    [Fact]
    public async Task Auth_ThreeWrongTokens_ClosesTheConnection()
    {
        await using var c = await RawRpcClient.ConnectAsync(_host.EndPoint);
        for (int i = 0; i < 2; i++)
            Assert.Equal("unauthorized", (await c.CallAsync("auth", Args.Of(("token", $"guess-{i}")))).Code);
        uint last = await c.SendRequestAsync("auth", Args.Of(("token", "guess-2")));
        Assert.Equal("unauthorized", (await c.WaitReplyAsync(last)).Code);
        Assert.True(await c.WaitClosedAsync(TimeSpan.FromSeconds(10)), "the connection stayed open after 3 failed auth attempts");

        // Other connections are unaffected.
        await using var good = await RawRpcClient.ConnectAsync(_host.EndPoint, Token);
        Assert.False((await good.CallAsync("metrics")).IsError);
    }

    [Fact]
    public async Task Auth_BadArguments_BadRequest()
    {
        await using var c = await RawRpcClient.ConnectAsync(_host.EndPoint);
        Assert.Equal("bad_request", (await c.CallAsync("auth", Args.Of(("token", 123)))).Code);
        Assert.Equal("bad_request", (await c.CallAsync("auth", Args.Of(("token", Token), ("user", "x")))).Code);
        Assert.Equal("bad_request", (await c.CallAsync("auth")).Code);
        // A malformed auth is not a failed guess: the right token still works on this connection.
        Assert.False((await c.CallAsync("auth", Args.Of(("token", Token)))).IsError);
    }
}
