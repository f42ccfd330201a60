using Serving.Protocol.MessagePack;

namespace Serving.Protocol.Tests.MessagePack;

/// <summary>Splitting a byte stream into messages, however the bytes are chunked.</summary>
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
    public void AnyChunking_YieldsTheSameMessages(int chunk)
    {
        byte[] stream = Messages(out var expected);
        using var decoder = new MsgPackStreamDecoder();
        var got = new List<MsgValue>();
        for (int at = 0; at < stream.Length; at += chunk)
        {
            var piece = stream.AsSpan(at, Math.Min(chunk, stream.Length - at));
            while (!piece.IsEmpty)
            {
                int taken = decoder.Append(piece);
                piece = piece[taken..];
                while (decoder.TryReadMessage(out var message))
                {
                    got.Add(message);
                }
            }
        }
        Assert.Equal(0, decoder.BufferedBytes);
        Assert.Equal(expected, got);
    }

    [Fact]
    public void PartialMessage_IsHeldUntilComplete()
    {
        byte[] bytes = MsgPack.Encode(MsgValue.FromArray(1, 2, 3));
        using var decoder = new MsgPackStreamDecoder();
        decoder.Append(bytes.AsSpan(0, 2));
        Assert.False(decoder.TryReadFrame(out _));
        Assert.Equal(2, decoder.BufferedBytes);
        decoder.Append(bytes.AsSpan(2));
        Assert.True(decoder.TryReadFrame(out var frame));
        Assert.Equal(bytes, frame.ToArray());
    }

    [Fact]
    public void MessageLargerThanTheLimit_FailsOnceTheLimitIsPassed_AndTheBufferNeverGrowsBeyondIt()
    {
        var limits = new MsgPackLimits { MaxMessageBytes = 1024 };
        using var decoder = new MsgPackStreamDecoder(limits);
        // An array of 2000 fixints declares 2000 items: refused at the header (cannot fit 1024 bytes).
        decoder.Append(new byte[] { 0xdc, 0x07, 0xd0 });
        Assert.Equal(MsgPackErrorCode.LimitExceeded, Assert.Throws<MsgPackException>(() => decoder.TryReadFrame(out _)).Code);

        // Many small items in a fixarray-of-arrays that only exceeds the limit as bytes arrive.
        using var second = new MsgPackStreamDecoder(limits);
        var big = MsgPack.Encode(MsgValue.FromArray(Enumerable.Range(0, 15).Select(_ => MsgValue.FromString(new string('y', 100))).ToArray()));
        int fed = 0;
        var error = Assert.Throws<MsgPackException>(() =>
        {
            while (fed < big.Length)
            {
                fed += second.Append(big.AsSpan(fed, Math.Min(50, big.Length - fed)));
                second.TryReadFrame(out _);
            }
        });
        Assert.Equal(MsgPackErrorCode.LimitExceeded, error.Code);
        Assert.True(second.BufferedBytes <= 1024);
    }
}
