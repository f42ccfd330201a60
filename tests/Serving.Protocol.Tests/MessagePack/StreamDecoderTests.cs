using System.Buffers;
using System.IO.Pipelines;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Protocol.Tests.MessagePack;

/// <summary>Splitting a byte stream into messages (MsgPackFramer over a pipe's buffers), however the bytes are chunked.</summary>
public class StreamDecoderTests
{
    private static byte[] Messages(out MsgValue[] values)
    {
        values =
        [
            MsgValue.FromArray(0, 1, "echo", MsgValue.FromArray(MsgValue.Map(("value", new string('x', 300))))),
            MsgValue.FromArray(2, "note", MsgValue.EmptyArray),
            MsgValue.FromInt64(-5),
            MsgValue.FromBinary(new byte[70_000]),
            MsgValue.FromTimestamp(-62167219200, 0),
        ];
        return values.SelectMany(MsgPack.Encode).ToArray();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(4096)]
    [InlineData(1 << 20)]
    public async Task AnyChunking_YieldsTheSameMessages(int chunk)
    {
        byte[] stream = Messages(out var expected);
        // A small minimum segment: messages and even tokens span several of the pipe's segments.
        var pipe = new Pipe(new PipeOptions(minimumSegmentSize: 512, pauseWriterThreshold: 0));
        var writer = Task.Run(async () =>
        {
            for (int at = 0; at < stream.Length; at += chunk)
            {
                await pipe.Writer.WriteAsync(stream.AsMemory(at, Math.Min(chunk, stream.Length - at)));
            }
            await pipe.Writer.CompleteAsync();
        });
        var messages = new MsgPackMessageReader(pipe.Reader);
        var got = new List<MsgValue>();
        while (await messages.ReadAsync() is { } message)
        {
            got.Add(message);
        }
        await writer;
        // The stream ended cleanly between messages: nothing was left over.
        Assert.Equal(expected, got);
    }

    [Fact]
    public void PartialMessage_IsHeldUntilComplete()
    {
        byte[] bytes = MsgPack.Encode(MsgValue.FromArray(1, 2, 3));
        var framer = new MsgPackFramer(null);
        var partial = new ReadOnlySequence<byte>(bytes, 0, 2);
        Assert.False(framer.TryReadFrame(ref partial, out _));
        Assert.Equal(2, partial.Length);
        Assert.Equal(2, framer.PendingBytes);
        var whole = new ReadOnlySequence<byte>(bytes);
        Assert.True(framer.TryReadFrame(ref whole, out var frame));
        Assert.Equal(bytes, frame.ToArray());
        Assert.Equal(0, framer.PendingBytes);
    }

    [Fact]
    public async Task StreamEndingInsideAMessage_IsTruncated()
    {
        byte[] bytes = MsgPack.Encode(MsgValue.FromArray(1, 2, 3));
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync(bytes.AsMemory(0, 3));
        await pipe.Writer.CompleteAsync();
        var e = await Assert.ThrowsAsync<RpcException>(async () => await new MsgPackMessageReader(pipe.Reader).ReadAsync());
        Assert.Equal(RpcProtocolFault.Truncated, e.ProtocolFault);
    }

    [Fact]
    public void MessageLargerThanTheLimit_FailsOnceTheLimitIsPassed_AndTheBufferNeverGrowsBeyondIt()
    {
        var limits = new MsgPackLimits { MaxMessageBytes = 1024 };
        // An array of 2000 fixints declares 2000 items: refused at the header (cannot fit 1024 bytes).
        var framer = new MsgPackFramer(limits);
        var header = new ReadOnlySequence<byte>([0xdc, 0x07, 0xd0]);
        Assert.Equal(RpcProtocolFault.LimitExceeded, Assert.Throws<RpcException>(() => framer.TryReadFrame(ref header, out _)).ProtocolFault);

        // Many small items in a fixarray-of-arrays that only exceeds the limit as bytes arrive, 50 at a time. The
        // bytes wait in the reader's buffer (a pipe's) until the framer refuses them, so it must refuse as soon as
        // the limit is passed: the buffer then holds at most the limit plus the last read.
        var second = new MsgPackFramer(limits);
        var big = MsgPack.Encode(MsgValue.FromArray(Enumerable.Range(0, 15).Select(_ => MsgValue.FromString(new string('y', 100))).ToArray()));
        int fed = 0;
        var error = Assert.Throws<RpcException>(() =>
        {
            while (fed < big.Length)
            {
                fed += Math.Min(50, big.Length - fed);
                var buffered = new ReadOnlySequence<byte>(big, 0, fed);
                second.TryReadFrame(ref buffered, out _);
            }
        });
        Assert.Equal(RpcProtocolFault.LimitExceeded, error.ProtocolFault);
        Assert.True(fed <= 1024 + 50, $"{fed} bytes were buffered before the limit error");
    }
}
