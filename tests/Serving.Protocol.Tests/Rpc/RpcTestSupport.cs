using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;
using Serving.Server;

namespace Serving.Protocol.Tests.Rpc;

/// <summary>Records log events so tests can assert why the server closed a connection.</summary>
internal sealed class CapturingLogger : ILogger
{
    public ConcurrentQueue<(int EventId, string Message)> Events { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Events.Enqueue((eventId.Id, formatter(state, exception)));

    public bool Has(int eventId, string contains = "") =>
        Events.Any(e => e.EventId == eventId && e.Message.Contains(contains, StringComparison.Ordinal));

    /// <summary>Waits (up to 10 s: a liveness bound, not a timing assertion) for an event.</summary>
    public async Task<bool> WaitForAsync(int eventId, string contains = "")
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (Has(eventId, contains))
            {
                return true;
            }
            await Task.Delay(10);
        }
        return false;
    }
}

/// <summary>
/// A bare client on a real socket: sends any bytes (well-formed or not) and reads whole messages back with the
/// Protocol's message reader. Reads give up after 10 s so a broken server fails the test instead of hanging it.
/// </summary>
internal sealed class RawClient : IAsyncDisposable
{
    private static readonly TimeSpan ReadLimit = TimeSpan.FromSeconds(10);
    private readonly Socket _socket;
    private readonly PipeReader _input;
    private readonly MsgPackMessageReader _messages;
    private bool _closed;

    private RawClient(Socket socket)
    {
        _socket = socket;
        _input = PipeReader.Create(new NetworkStream(socket, ownsSocket: false));
        _messages = new MsgPackMessageReader(_input, new MsgPackLimits { MaxMessageBytes = 64 << 20, MaxBinaryBytes = 64 << 20 });
    }

    public static async Task<RawClient> ConnectAsync(IPEndPoint endPoint, int? receiveBufferSize = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (receiveBufferSize is int size)
        {
            socket.ReceiveBufferSize = size;
        }
        await socket.ConnectAsync(endPoint);
        return new RawClient(socket);
    }

    /// <summary>Sends bytes; a send refused because the server already closed is ignored (reads will show the close).</summary>
    public async Task SendRawAsync(byte[] bytes)
    {
        try
        {
            await _socket.SendAsync(bytes, SocketFlags.None);
        }
        catch (SocketException)
        {
        }
    }

    public Task SendAsync(MsgValue message) => SendRawAsync(MsgPack.Encode(message));

    public Task RequestAsync(uint id, string method, MsgValue args)
    {
        var output = new ArrayBufferWriter<byte>();
        RpcMessage.WriteRequest(output, id, method, args);
        return SendRawAsync(output.WrittenSpan.ToArray());
    }

    /// <summary>The next message, or null when the server closed the connection (EOF or reset).</summary>
    public async Task<MsgValue?> ReadAsync()
    {
        if (_closed)
        {
            return null;
        }
        using var timeout = new CancellationTokenSource(ReadLimit);
        try
        {
            var message = await _messages.ReadAsync(timeout.Token);
            _closed = message is null;
            return message;
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            _closed = true;
            return null; // reset counts as closed
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException("No message and no close from the server within 10 s");
        }
    }

    /// <summary>The next message, which must be a response: (msgid, error, result).</summary>
    public async Task<RpcMessage> ReadResponseAsync()
    {
        var message = await ReadAsync() ?? throw new Xunit.Sdk.XunitException("The server closed the connection instead of replying");
        var parsed = RpcMessage.Parse(message);
        Assert.Equal(RpcMessageType.Response, parsed.Type);
        return parsed;
    }

    /// <summary>Sends a request and reads its reply (no other traffic expected meanwhile).</summary>
    public async Task<RpcMessage> CallAsync(uint id, string method, MsgValue args)
    {
        await RequestAsync(id, method, args);
        var response = await ReadResponseAsync();
        Assert.Equal(id, response.MessageId);
        return response;
    }

    /// <summary>Reads until the server closes; returns the messages that came before the close.</summary>
    public async Task<List<MsgValue>> ReadUntilClosedAsync()
    {
        var messages = new List<MsgValue>();
        while (await ReadAsync() is MsgValue m)
        {
            messages.Add(m);
        }
        return messages;
    }

    /// <summary>Ends the client's sending side (FIN) while still reading.</summary>
    public void ShutdownSend() => _socket.Shutdown(SocketShutdown.Send);

    /// <summary>Closes the socket at once with a reset (a client process that died).</summary>
    public void Abort()
    {
        _socket.LingerState = new LingerOption(true, 0);
        _socket.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        _socket.Dispose();
        await _input.CompleteAsync();
    }
}

internal static class RpcAssert
{
    public static string ErrorCode(RpcMessage response)
    {
        Assert.False(response.Error.IsNil, $"expected an error, got result {response.Result}");
        return RpcException.FromMsgValue(response.Error).Code;
    }

    public static void Success(RpcMessage response)
    {
        Assert.True(response.Error.IsNil, $"expected success, got error {response.Error}");
    }
}

/// <summary>A started server with test methods; disposed at the end of each test.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    public TestServer(RpcServerOptions? options = null)
    {
        Server = new RpcServer(options ?? new RpcServerOptions(), Log);
        Server.Register("server.info", (_, _) => ValueTask.FromResult<MsgValue>("test"), isPublic: true);
        Server.Register("echo", (call, _) =>
        {
            call.Args.EnsureOnly("value");
            return ValueTask.FromResult(call.Args.Get("value"));
        });
        Server.Register("sleep", async (call, ct) =>
        {
            long ms = call.Args.GetInt64("ms", 0, 60_000);
            Started.Writer.TryWrite(call.MessageId ?? 0);
            await Task.Delay(TimeSpan.FromMilliseconds(ms), Server.Options.TimeProvider, ct); // the server's clock (fake in timeout tests)
            return ms;
        });
        Server.Register("wait", async (call, ct) =>
        {
            Started.Writer.TryWrite(call.MessageId ?? 0);
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            finally
            {
                Cancelled.Writer.TryWrite(call.MessageId ?? 0);
            }
            return MsgValue.Nil;
        });
        Server.Register("blob", (call, _) => ValueTask.FromResult<MsgValue>(new byte[call.Args.GetInt64("bytes", 0, 1 << 20)]));
        Server.Register("boom", (_, _) => throw new InvalidOperationException("secret detail at 0x7ffd1234"));
        Server.Register("fail", (_, _) => throw new RpcException(RpcErrorCodes.ContextExceeded, "too long",
            MsgValue.Map(("prompt_tokens", 5000), ("context", 4096))));
        Server.Register("stream", async (call, _) =>
        {
            long n = call.Args.GetInt64("n", 0, 100);
            for (int i = 0; i < n; i++)
            {
                await call.NotifyAsync("stream.item", MsgValue.Map(("msgid", (long)call.MessageId!.Value), ("i", i)));
            }
            return n;
        });
        Server.Start();
    }

    public CapturingLogger Log { get; } = new();

    public RpcServer Server { get; }

    /// <summary>msgids of "wait" and "sleep" calls as they start / of "wait" calls as their tokens fire.</summary>
    public System.Threading.Channels.Channel<uint> Started { get; } = System.Threading.Channels.Channel.CreateUnbounded<uint>();

    public System.Threading.Channels.Channel<uint> Cancelled { get; } = System.Threading.Channels.Channel.CreateUnbounded<uint>();

    public Task<RawClient> ConnectAsync(int? receiveBufferSize = null) => RawClient.ConnectAsync(Server.LocalEndPoint, receiveBufferSize);

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}
