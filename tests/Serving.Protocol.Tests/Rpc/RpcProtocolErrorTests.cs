using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Protocol.Tests.Rpc;

/// <summary>
/// docs/testing.md RPC shape errors on real sockets: protocol errors close the connection (after an error reply when
/// the msgid is known); semantic errors reply and keep it usable.
/// </summary>
public class RpcProtocolErrorTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    public static IEnumerable<object[]> ClosedWithoutReply()
    {
        yield return ["top level not an array", MsgPack.Encode(MsgValue.Map(("a", 1)))];
        yield return ["top level nil", Hex("c0")];
        yield return ["empty array", Hex("90")];
        yield return ["unknown type 3", MsgPack.Encode(MsgValue.FromArray(3, 1, "echo", MsgValue.EmptyArray))];
        yield return ["type as string", MsgPack.Encode(MsgValue.FromArray("0", 1, "echo", MsgValue.EmptyArray))];
        yield return ["msgid negative", MsgPack.Encode(MsgValue.FromArray(0, -1, "echo", MsgValue.EmptyArray))];
        yield return ["msgid above uint32", MsgPack.Encode(MsgValue.FromArray(0, 1L << 32, "echo", MsgValue.EmptyArray))];
        yield return ["msgid a string", MsgPack.Encode(MsgValue.FromArray(0, "7", "echo", MsgValue.EmptyArray))];
        yield return ["msgid a float", MsgPack.Encode(MsgValue.FromArray(0, 1.0, "echo", MsgValue.EmptyArray))];
        yield return ["never-used byte", Hex("c1")];
        yield return ["notification with 2 elements", MsgPack.Encode(MsgValue.FromArray(2, "echo"))];
        yield return ["notification params not array", MsgPack.Encode(MsgValue.FromArray(2, "echo", MsgValue.EmptyMap))];
        yield return ["depth bomb", Enumerable.Repeat((byte)0x91, 2_000).Append((byte)0xc0).ToArray()];
        yield return ["huge declared str", Hex("db ffffffff 00")];
    }

    [Theory]
    [MemberData(nameof(ClosedWithoutReply))]
    public async Task ProtocolError_WithoutKnownMsgid_ClosesTheConnection(string name, byte[] input)
    {
        await using var server = new TestServer();
        await using var client = await server.ConnectAsync();
        await client.SendRawAsync(input);
        var before = await client.ReadUntilClosedAsync();
        Assert.True(before.Count == 0, $"{name}: unexpected reply {string.Join(", ", before)}");
        Assert.True(await server.Log.WaitForAsync(6), name);
        // Other clients are unaffected.
        await using var other = await server.ConnectAsync();
        RpcAssert.Success(await other.CallAsync(1, "server.info", MsgValue.EmptyMap));
    }

    public static IEnumerable<object[]> ClosedAfterReply()
    {
        yield return ["request with 3 elements", MsgPack.Encode(MsgValue.FromArray(0, 11, "echo")), 11u];
        yield return ["request with 5 elements", MsgPack.Encode(MsgValue.FromArray(0, 12, "echo", MsgValue.EmptyArray, 1)), 12u];
        yield return ["params not an array", MsgPack.Encode(MsgValue.FromArray(0, 13, "echo", MsgValue.EmptyMap)), 13u];
        yield return ["params nil", MsgPack.Encode(MsgValue.FromArray(0, 14, "echo", MsgValue.Nil)), 14u];
        yield return ["method as bin", MsgPack.Encode(MsgValue.FromArray(0, 15, "echo"u8.ToArray(), MsgValue.EmptyArray)), 15u];
        yield return ["method an integer", MsgPack.Encode(MsgValue.FromArray(0, 16, 5, MsgValue.EmptyArray)), 16u];
        // [0, 17, str "\xc3\x28", []]: invalid UTF-8; the msgid is read from the raw bytes.
        yield return ["method invalid UTF-8", Hex("94 00 11 a2 c328 90"), 17u];
        yield return ["response sent to the server", MsgPack.Encode(MsgValue.FromArray(1, 18, MsgValue.Nil, "x")), 18u];
        yield return ["msgid 2^32-1 with bad params", MsgPack.Encode(MsgValue.FromArray(0, uint.MaxValue, "echo", 1)), uint.MaxValue];
    }

    [Theory]
    [MemberData(nameof(ClosedAfterReply))]
    public async Task ProtocolError_WithKnownMsgid_RepliesBadRequestThenCloses(string name, byte[] input, uint id)
    {
        await using var server = new TestServer();
        await using var client = await server.ConnectAsync();
        await client.SendRawAsync(input);
        var messages = await client.ReadUntilClosedAsync();
        var reply = Assert.Single(messages);
        var response = RpcMessage.Parse(reply);
        Assert.Equal(id, response.MessageId);
        Assert.Equal(RpcErrorCodes.BadRequest, RpcAssert.ErrorCode(response));
        Assert.True(server.Log.Has(6), name);
    }

    [Fact]
    public async Task TrailingGarbage_AfterAValidRequest_ClosesTheConnection()
    {
        await using var server = new TestServer();
        await using var client = await server.ConnectAsync();
        byte[] request = MsgPack.Encode(MsgValue.FromArray(0, 1, "server.info", MsgValue.EmptyArray));
        await client.SendRawAsync([.. request, 0xc1, 0x00]);
        var messages = await client.ReadUntilClosedAsync();
        // The valid request may or may not be answered before the close; nothing else may come.
        Assert.True(messages.Count <= 1);
        Assert.All(messages, m => Assert.Equal(1u, RpcMessage.Parse(m).MessageId));
        Assert.True(server.Log.Has(6));
    }

    [Fact]
    public async Task ConnectionEndingInsideAMessage_IsAProtocolError()
    {
        await using var server = new TestServer();
        var client = await server.ConnectAsync();
        byte[] request = MsgPack.Encode(MsgValue.FromArray(0, 1, "server.info", MsgValue.EmptyArray));
        await client.SendRawAsync(request[..^2]);
        await client.DisposeAsync();
        Assert.True(await server.Log.WaitForAsync(6, "inside a message"));
    }

    [Fact]
    public async Task MessageOverTheSizeLimit_RepliesToItsMsgidThenCloses()
    {
        var options = new Serving.Server.RpcServerOptions { Limits = new MsgPackLimits { MaxMessageBytes = 1024 } };
        await using var server = new TestServer(options);
        await using var client = await server.ConnectAsync();
        await client.RequestAsync(21, "echo", MsgValue.Map(("value", new string('z', 2000))));
        var reply = Assert.Single(await client.ReadUntilClosedAsync());
        Assert.Equal(21u, RpcMessage.Parse(reply).MessageId);
        Assert.Equal(RpcErrorCodes.BadRequest, RpcAssert.ErrorCode(RpcMessage.Parse(reply)));
    }

    [Fact]
    public async Task SemanticErrors_ReplyAndKeepTheConnectionUsable()
    {
        await using var server = new TestServer();
        await using var client = await server.ConnectAsync();

        Assert.Equal(RpcErrorCodes.NotFound, RpcAssert.ErrorCode(await client.CallAsync(1, "no.such.method", MsgValue.EmptyMap)));
        Assert.Equal(RpcErrorCodes.BadRequest, RpcAssert.ErrorCode(await client.CallAsync(2, "echo", MsgValue.Map(("value", 1), ("extra", 2)))));
        Assert.Equal(RpcErrorCodes.BadRequest, RpcAssert.ErrorCode(await client.CallAsync(3, "sleep", MsgValue.Map(("ms", -5)))));
        Assert.Equal(RpcErrorCodes.BadRequest, RpcAssert.ErrorCode(await client.CallAsync(4, "sleep", MsgValue.EmptyMap)));
        // params [1, 2] is an array (framing is fine) but not our named-argument convention.
        await client.SendAsync(MsgValue.FromArray(0, 5, "echo", MsgValue.FromArray(1, 2)));
        var shape = await client.ReadResponseAsync();
        Assert.Equal(5u, shape.MessageId);
        Assert.Equal(RpcErrorCodes.BadRequest, RpcAssert.ErrorCode(shape));
        // Handler failures: a typed error passes through with its data; anything else is "internal" with no detail.
        var fail = await client.CallAsync(6, "fail", MsgValue.EmptyMap);
        Assert.Equal(RpcErrorCodes.ContextExceeded, RpcAssert.ErrorCode(fail));
        Assert.Equal(5000, RpcException.FromMsgValue(fail.Error).ErrorData.AsMap()[0].Value.AsInt64());
        var boom = await client.CallAsync(7, "boom", MsgValue.EmptyMap);
        Assert.Equal(RpcErrorCodes.Internal, RpcAssert.ErrorCode(boom));
        Assert.DoesNotContain("secret", boom.Error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("0x7ffd", boom.Error.ToString(), StringComparison.Ordinal);
        Assert.True(server.Log.Has(7));

        var ok = await client.CallAsync(8, "echo", MsgValue.Map(("value", "still here")));
        RpcAssert.Success(ok);
        Assert.Equal("still here", ok.Result.AsString());
    }

    [Fact]
    public async Task EmptyParamsArray_MeansNoArguments_AndNotificationsRunWithoutReply()
    {
        await using var server = new TestServer();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(MsgValue.FromArray(0, 1, "server.info", MsgValue.EmptyArray));
        RpcAssert.Success(await client.ReadResponseAsync());
        // A notification gets no reply: the next message is the reply to request 2.
        await client.SendAsync(MsgValue.FromArray(2, "server.info", MsgValue.EmptyArray));
        await client.SendAsync(MsgValue.FromArray(2, "no.such.method", MsgValue.EmptyArray));
        var next = await client.CallAsync(2, "echo", MsgValue.Map(("value", 3)));
        Assert.Equal(3, next.Result.AsInt64());
    }
}
