using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Host.Tests.Client;

/// <summary>
/// A scripted one-connection MessagePack-RPC peer for client wire tests: the test reads what the client sent and
/// writes exactly the replies (out of order, malformed, or none) it wants the client to see.
/// </summary>
internal sealed class FakeServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private Socket? _socket;
    private PipeReader? _input;
    private MsgPackMessageReader? _messages;

    public FakeServer() => _listener.Start();

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public async Task AcceptAsync()
    {
        _socket = await _listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(10));
        _input = PipeReader.Create(new NetworkStream(_socket, ownsSocket: false));
        _messages = new MsgPackMessageReader(_input);
    }

    /// <summary>The next message the client sent (fails the test after 10 s).</summary>
    public async Task<RpcMessage> ReadAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var message = await _messages!.ReadAsync(timeout.Token) ?? throw new IOException("the client closed the connection");
        return RpcMessage.Parse(message);
    }

    public Task ReplyAsync(uint id, MsgValue result) => SendAsync(w => RpcMessage.WriteResponse(w, id, default, result));

    public Task ReplyErrorAsync(uint id, string code, string message) =>
        SendAsync(w => RpcMessage.WriteResponse(w, id, new RpcException(code, message).ToMsgValue(), default));

    public Task NotifyTokenAsync(uint id, int token, string text) =>
        SendAsync(w => RpcMessage.WriteNotification(w, "generate.token", MsgValue.Map(("id", (long)id), ("text", text), ("token", token))));

    public async Task SendRawAsync(byte[] bytes) => await _socket!.SendAsync(bytes, SocketFlags.None);

    public void CloseConnection() => _socket?.Dispose();

    public async ValueTask DisposeAsync()
    {
        _socket?.Dispose();
        _listener.Stop();
        if (_input is not null) await _input.CompleteAsync();
    }

    private async Task SendAsync(Action<IBufferWriter<byte>> write)
    {
        var output = new ArrayBufferWriter<byte>();
        write(output);
        await _socket!.SendAsync(output.WrittenMemory, SocketFlags.None);
    }

    /// <summary>A well-formed generate result with the given tokens and text.</summary>
    public static MsgValue GenerateResult(string text, params int[] tokens) => MsgValue.Map(
        ("text", text), ("tokens", MsgValue.FromArray(tokens.Select(t => (MsgValue)t).ToArray())),
        ("finish_reason", "length"), ("stop", MsgValue.Nil), ("seed", 1),
        ("usage", MsgValue.Map(("prompt_tokens", 3), ("completion_tokens", tokens.Length), ("cached_prompt_tokens", 0),
            ("ttft_ms", 1.5), ("tpot_ms", 0.5), ("total_ms", 3.0), ("queue_ms", 0.1), ("preemptions", 0), ("joules", MsgValue.Nil))));
}
