using System.Buffers;
using System.IO.Pipelines;
using Serving.Protocol.Rpc;

namespace Serving.Protocol.MessagePack;

/// <summary>
/// Reads whole MessagePack messages from a <see cref="PipeReader"/> (e.g. over a socket's stream): frames them in
/// the pipe's own buffers with <see cref="MsgPackFramer"/> (no copy; limits enforced before decoding) and decodes
/// each into a <see cref="MsgValue"/>. Buffered bytes never exceed the message limit plus one read. Not
/// thread-safe: one reader loop owns it.
/// </summary>
public sealed class MsgPackMessageReader
{
    private readonly PipeReader _input;
    private MsgPackFramer _framer;

    /// <summary>Creates a reader over <paramref name="input"/> (not owned) under <paramref name="limits"/> (default when null).</summary>
    public MsgPackMessageReader(PipeReader input, MsgPackLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        _input = input;
        _framer = new MsgPackFramer(limits);
    }

    /// <summary>The limits in force.</summary>
    public MsgPackLimits Limits => _framer.Limits;

    /// <summary>The next message, or null when the stream ended cleanly between messages.</summary>
    /// <exception cref="RpcException">A protocol error: malformed bytes, a limit passed, nesting too deep, or the
    /// stream ending inside a message (Truncated). The stream cannot be resynchronized; stop reading.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled.</exception>
    public ValueTask<MsgValue?> ReadAsync(CancellationToken ct = default) =>
        ReadAsync(static frame => MsgPack.DecodeFrame(frame), ct);

    /// <summary>
    /// The next message decoded by <paramref name="decode"/> from its framed bytes (valid only during the call, e.g.
    /// <c>frame => RpcMessage.Parse(frame)</c>), or null when the stream ended cleanly between messages.
    /// </summary>
    /// <exception cref="RpcException">As <see cref="ReadAsync(CancellationToken)"/>, or thrown by <paramref name="decode"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled.</exception>
    public async ValueTask<T?> ReadAsync<T>(Func<ReadOnlySequence<byte>, T> decode, CancellationToken ct = default)
        where T : struct
    {
        ArgumentNullException.ThrowIfNull(decode);
        while (true)
        {
            var result = await _input.ReadAsync(ct).ConfigureAwait(false);
            var buffer = result.Buffer;
            bool framed = false;
            T message = default;
            try
            {
                framed = _framer.TryReadFrame(ref buffer, out var frame);
                if (framed)
                {
                    message = decode(frame);
                }
            }
            finally
            {
                // After a message: consumed through it, and the rest may hold more messages (the next read returns
                // at once). Without one: everything was examined, so the next read waits for new bytes.
                if (framed)
                {
                    _input.AdvanceTo(buffer.Start);
                }
                else
                {
                    _input.AdvanceTo(buffer.Start, buffer.End);
                }
            }
            if (framed)
            {
                return message;
            }
            if (result.IsCompleted || result.IsCanceled)
            {
                if (!buffer.IsEmpty)
                {
                    throw RpcException.Protocol(RpcProtocolFault.Truncated, "The stream ended inside a message", _framer.PendingBytes);
                }
                return null;
            }
        }
    }
}
