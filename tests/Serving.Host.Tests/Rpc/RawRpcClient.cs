using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Host.Tests.Rpc;

/// <summary>An error or a result: one response as the test sees it.</summary>
internal readonly record struct RpcReply(uint MessageId, MsgValue Error, MsgValue Result)
{
    public bool IsError => !Error.IsNil;

    /// <summary>The error's <c>code</c>, or null on success.</summary>
    public string? Code => IsError && Error.TryGetValue("code", out var c) && c.TryGetString(out var s) ? s : null;

    public string Message => IsError && Error.TryGetValue("message", out var m) && m.TryGetString(out var s) ? s : "";

    /// <summary>The error's <c>data</c> map (nil when absent).</summary>
    public MsgValue Data => IsError && Error.TryGetValue("data", out var d) ? d : default;

    public override string ToString() => IsError ? $"#{MessageId} error {Error}" : $"#{MessageId} {Result}";
}

/// <summary>
/// A deliberately dumb MessagePack-RPC client on a raw socket and the Protocol codec only (no src/Client), so the
/// tests see exactly what the server puts on the wire: replies in arrival order, notifications as they come,
/// and whether the server closed the connection.
/// </summary>
internal sealed class RawRpcClient : IAsyncDisposable
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    private readonly Socket _socket;
    private readonly PipeReader _input;
    private readonly MsgPackMessageReader _messages;
    private uint _nextId = 1;

    private RawRpcClient(Socket socket)
    {
        _socket = socket;
        _input = PipeReader.Create(new NetworkStream(socket, ownsSocket: false));
        _messages = new MsgPackMessageReader(_input);
    }

    /// <summary>Notifications received so far, in order (<c>[method, params]</c> as parsed).</summary>
    public List<RpcMessage> Notifications { get; } = [];

    /// <summary>True once the server has closed its side.</summary>
    public bool Closed { get; private set; }

    /// <summary>Free for the test's own bookkeeping (e.g. which address a hoarding client connected from).</summary>
    public int Tag { get; set; }

    public static Task<RawRpcClient> ConnectAsync(IPEndPoint endPoint) => ConnectFromAsync(endPoint, null);

    /// <summary>
    /// Connects from <paramref name="source"/> (e.g. 127.0.0.2: on Linux every 127.x.y.z is the loopback interface), so
    /// one test process can be several client addresses for the server's per-address limits.
    /// </summary>
    public static async Task<RawRpcClient> ConnectFromAsync(IPEndPoint endPoint, IPAddress? source)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (source is not null) socket.Bind(new IPEndPoint(source, 0));
            await socket.ConnectAsync(endPoint);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new RawRpcClient(socket);
    }

    /// <summary>Connects and authenticates with <paramref name="token"/>.</summary>
    public static async Task<RawRpcClient> ConnectAsync(IPEndPoint endPoint, string token)
    {
        var c = await ConnectAsync(endPoint);
        var r = await c.CallAsync("auth", MsgValue.Map(("token", token)));
        Assert.False(r.IsError, $"auth failed: {r}");
        return c;
    }

    /// <summary>Sends raw bytes (malformed frames included).</summary>
    public async Task SendRawAsync(ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            int sent = await _socket.SendAsync(bytes, SocketFlags.None);
            bytes = bytes[sent..];
        }
    }

    /// <summary>Sends <c>[0, msgid, method, [args]]</c> and returns the msgid used.</summary>
    public async Task<uint> SendRequestAsync(string method, MsgValue args, uint? messageId = null)
    {
        uint id = messageId ?? _nextId++;
        var output = new ArrayBufferWriter<byte>();
        RpcMessage.WriteRequest(output, id, method, args);
        await SendRawAsync(output.WrittenMemory);
        return id;
    }

    /// <summary>Sends a request whose params array is given as-is (for shape errors).</summary>
    public async Task<uint> SendRequestWithParamsAsync(string method, MsgValue paramsArray)
    {
        uint id = _nextId++;
        await SendRawAsync(MsgPack.Encode(MsgValue.FromArray(0, id, method, paramsArray)));
        return id;
    }

    /// <summary>Calls and waits for the reply with the same msgid (notifications and other replies are kept).</summary>
    public async Task<RpcReply> CallAsync(string method, MsgValue args, TimeSpan? timeout = null)
    {
        uint id = await SendRequestAsync(method, args);
        return await WaitReplyAsync(id, timeout);
    }

    /// <summary>Calls with no arguments (<c>[{}]</c>).</summary>
    public Task<RpcReply> CallAsync(string method) => CallAsync(method, MsgValue.EmptyMap);

    private readonly Dictionary<uint, RpcReply> _replies = [];

    /// <summary>Waits for the reply to <paramref name="messageId"/>; other replies are kept for later.</summary>
    public async Task<RpcReply> WaitReplyAsync(uint messageId, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        while (!_replies.ContainsKey(messageId))
        {
            var message = await ReadMessageAsync(cts.Token)
                ?? throw new InvalidOperationException($"the server closed the connection before replying to #{messageId}");
            Keep(message);
        }
        _replies.Remove(messageId, out var reply);
        return reply;
    }

    /// <summary>Reads the next message of any kind (replies not kept); null when the server closed the connection.</summary>
    public async Task<RpcMessage?> ReadNextAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        var m = await ReadMessageAsync(cts.Token);
        if (m is { Type: RpcMessageType.Notification } n) Notifications.Add(n);
        return m;
    }

    /// <summary>Waits for the next <c>generate.token</c> notification; keeps replies that come first.</summary>
    public async Task<MsgValue> WaitNotificationAsync(string method, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        int seen = Notifications.Count;
        while (true)
        {
            for (int i = seen; i < Notifications.Count; i++)
                if (Notifications[i].Method == method) return Notifications[i].Params[0];
            seen = Notifications.Count;
            var message = await ReadMessageAsync(cts.Token)
                ?? throw new InvalidOperationException($"the server closed the connection before a {method} notification");
            Keep(message);
        }
    }

    /// <summary>True when the server closes the connection within <paramref name="timeout"/> (messages before it are kept).</summary>
    public async Task<bool> WaitClosedAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (await ReadMessageAsync(cts.Token) is { } message) Keep(message);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private void Keep(RpcMessage message)
    {
        if (message.Type == RpcMessageType.Response)
            _replies[message.MessageId] = new RpcReply(message.MessageId, message.Error, message.Result);
        else
            Notifications.Add(message);
    }

    private async Task<RpcMessage?> ReadMessageAsync(CancellationToken ct)
    {
        if (Closed) return null;
        MsgValue? value;
        try
        {
            value = await _messages.ReadAsync(ct);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            value = null; // reset by the server: closed as well
        }
        if (value is not { } message)
        {
            Closed = true;
            return null;
        }
        return RpcMessage.Parse(message);
    }

    /// <summary>Sends raw bytes, ignoring a reset: the server may close while a bad message is still arriving.</summary>
    public async Task SendRawIgnoringResetAsync(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            await SendRawAsync(bytes);
        }
        catch (SocketException)
        {
        }
    }

    /// <summary>Ends the client's sending side (FIN) while still reading.</summary>
    public void ShutdownSend() => _socket.Shutdown(SocketShutdown.Send);

    /// <summary>Closes the socket at once (a client vanishing).</summary>
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
