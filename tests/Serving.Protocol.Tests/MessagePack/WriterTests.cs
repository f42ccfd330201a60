using System.Buffers;
using Serving.Protocol.MessagePack;

namespace Serving.Protocol.Tests.MessagePack;

/// <summary>The writer (MessagePack-CSharp's, with our timestamp payloads) picks the smallest form at every boundary,
/// and everything it writes reads back equal.</summary>
public class WriterTests
{
    private static string Hex(MsgValue v) => Convert.ToHexString(MsgPack.Encode(v)).ToLowerInvariant();

    [Theory]
    [InlineData(0L, "00")]
    [InlineData(127L, "7f")]
    [InlineData(128L, "cc80")]
    [InlineData(255L, "ccff")]
    [InlineData(256L, "cd0100")]
    [InlineData(65535L, "cdffff")]
    [InlineData(65536L, "ce00010000")]
    [InlineData(4294967295L, "ceffffffff")]
    [InlineData(4294967296L, "cf0000000100000000")]
    [InlineData(-1L, "ff")]
    [InlineData(-32L, "e0")]
    [InlineData(-33L, "d0df")]
    [InlineData(-128L, "d080")]
    [InlineData(-129L, "d1ff7f")]
    [InlineData(-32768L, "d18000")]
    [InlineData(-32769L, "d2ffff7fff")]
    [InlineData(-2147483648L, "d280000000")]
    [InlineData(-2147483649L, "d3ffffffff7fffffff")]
    [InlineData(long.MinValue, "d38000000000000000")]
    public void Integers_UseTheSmallestForm(long value, string hex)
    {
        Assert.Equal(hex, Hex(value));
        Assert.Equal(MsgValue.FromInt64(value), MsgPack.Decode(Convert.FromHexString(hex)));
    }

    [Fact]
    public void UInt64AboveInt64_IsUInt()
    {
        Assert.Equal("cfffffffffffffffff", Hex(ulong.MaxValue));
        var v = MsgPack.Decode(Convert.FromHexString("cfffffffffffffffff"));
        Assert.Equal(MsgValueKind.UInt, v.Kind);
        Assert.True(v.TryGetUInt64(out ulong u));
        Assert.Equal(ulong.MaxValue, u);
        Assert.False(v.TryGetInt64(out _));
    }

    [Theory]
    [InlineData(0, "a0")]
    [InlineData(31, "bf")]
    [InlineData(32, "d920")]
    [InlineData(255, "d9ff")]
    [InlineData(256, "da0100")]
    [InlineData(65535, "daffff")]
    [InlineData(65536, "db00010000")]
    public void StringHeaders_UseTheSmallestForm(int length, string headerHex)
    {
        var s = new string('x', length);
        Assert.StartsWith(headerHex, Hex(s));
        Assert.Equal(s, MsgPack.Decode(MsgPack.Encode(s)).AsString());
    }

    [Theory]
    [InlineData(0, "c400")]
    [InlineData(255, "c4ff")]
    [InlineData(256, "c50100")]
    [InlineData(65536, "c600010000")]
    public void BinaryHeaders_UseTheSmallestForm(int length, string headerHex)
    {
        var data = new byte[length];
        Assert.StartsWith(headerHex, Hex(data));
        Assert.Equal(MsgValue.FromBinary(data), MsgPack.Decode(MsgPack.Encode(data)));
    }

    [Theory]
    [InlineData(15, "9f", "8f")]
    [InlineData(16, "dc0010", "de0010")]
    [InlineData(65535, "dcffff", "deffff")]
    [InlineData(65536, "dd00010000", "df00010000")]
    public void ContainerHeaders_UseTheSmallestForm(int count, string arrayHex, string mapHex)
    {
        var items = Enumerable.Range(0, count).Select(i => MsgValue.FromInt64(i & 0x7f)).ToArray();
        var pairs = items.Select(i => new KeyValuePair<MsgValue, MsgValue>(i, MsgValue.Nil)).ToArray();
        Assert.StartsWith(arrayHex, Hex(MsgValue.FromArray(items)));
        Assert.StartsWith(mapHex, Hex(MsgValue.FromMap(pairs)));
        var limits = new MsgPackLimits { MaxMapCount = count, MaxArrayCount = count };
        Assert.Equal(MsgValue.FromArray(items), MsgPack.Decode(MsgPack.Encode(MsgValue.FromArray(items)), limits));
        Assert.Equal(MsgValue.FromMap(pairs), MsgPack.Decode(MsgPack.Encode(MsgValue.FromMap(pairs)), limits));
    }

    [Theory]
    [InlineData(1, "d405")]
    [InlineData(2, "d505")]
    [InlineData(3, "c70305")]
    [InlineData(4, "d605")]
    [InlineData(8, "d705")]
    [InlineData(16, "d805")]
    [InlineData(17, "c71105")]
    [InlineData(256, "c8010005")]
    [InlineData(65536, "c90001000005")]
    public void Ext_UsesFixextWhenTheLengthFits(int length, string headerHex)
    {
        var v = MsgValue.FromExt(5, new byte[length]);
        Assert.StartsWith(headerHex, Hex(v));
        Assert.Equal(v, MsgPack.Decode(MsgPack.Encode(v)));
    }

    [Theory]
    [InlineData(0L, 0u, "d6ff00000000")]
    [InlineData(4294967295L, 0u, "d6ffffffffff")]
    [InlineData(4294967296L, 0u, "d7ff0000000100000000")]
    [InlineData(1L, 1u, "d7ff0000000400000001")]
    [InlineData(17179869183L, 999999999u, "d7ffee6b27ffffffffff")]
    [InlineData(17179869184L, 0u, "c70cff000000000000000400000000")]
    [InlineData(-1L, 0u, "c70cff00000000ffffffffffffffff")]
    public void Timestamp_UsesTheShortestForm(long seconds, uint nanoseconds, string hex)
    {
        var v = MsgValue.FromTimestamp(seconds, nanoseconds);
        Assert.Equal(hex, Hex(v));
        Assert.Equal(v, MsgPack.Decode(Convert.FromHexString(hex)));
    }

    [Fact]
    public void Floats_KeepTheirWidth_AndRoundTripBitExactly()
    {
        Assert.Equal("ca3fc00000", Hex(MsgValue.FromFloat32(1.5f)));
        Assert.Equal("cb3ff8000000000000", Hex(1.5));
        foreach (double d in new[] { double.NaN, double.PositiveInfinity, -0.0, double.Epsilon, double.MaxValue })
        {
            Assert.Equal(MsgValue.FromFloat64(d), MsgPack.Decode(MsgPack.Encode(d)));
        }
    }

    [Fact]
    public void NestedValue_RoundTrips()
    {
        var v = MsgValue.FromArray(0, 7, "generate", MsgValue.FromArray(MsgValue.Map(
            ("prompt", "héllo 🍺"), ("max_tokens", 16), ("stream", true), ("t", 0.5), ("n", MsgValue.Nil),
            ("bin", new byte[] { 1, 2, 3 }), ("ids", MsgValue.FromArray(1, 2, 3)), ("empty", MsgValue.EmptyMap))));
        var back = MsgPack.Decode(MsgPack.Encode(v));
        Assert.Equal(v, back);
        Assert.True(back[3][0].TryGetValue("prompt", out var prompt));
        Assert.Equal("héllo 🍺", prompt.AsString());
    }

    [Fact]
    public void Writer_AppendsToAnyBufferWriter()
    {
        var output = new ArrayBufferWriter<byte>(1); // forces growth on every call
        MsgPack.Write(output, MsgValue.FromArray(MsgValue.Nil, true, "ok"));
        Assert.Equal("93c0c3a26f6b", Convert.ToHexString(output.WrittenSpan).ToLowerInvariant());
        MsgPack.Write(output, MsgValue.FromArray(MsgValue.Nil, true, "ok")); // appends after what is there
        Assert.Equal("93c0c3a26f6b93c0c3a26f6b", Convert.ToHexString(output.WrittenSpan).ToLowerInvariant());
    }

    [Fact]
    public void TimestampType_IsReservedForTimestamps()
    {
        Assert.Throws<ArgumentException>(() => MsgValue.FromExt(-1, [1, 2, 3, 4]));
        Assert.Throws<ArgumentOutOfRangeException>(() => MsgValue.FromTimestamp(0, 1_000_000_000));
    }
}
