using System.Buffers;
using System.IO.Pipelines;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Protocol.Tests.MessagePack;

/// <summary>docs/testing.md "MessagePack and RPC shape" bad inputs: each a typed error, before any allocation the input
/// cannot back, and never a stack overflow. The codec is MessagePack-CSharp's reader and writer under our limits
/// (MsgPackFramer, MsgPack): these check that use of the library.</summary>
public class BadInputTests
{
    // Limits so generous that only "the bytes are not there" can stop a huge declared size.
    private static readonly MsgPackLimits Huge = new()
    {
        MaxMessageBytes = int.MaxValue,
        MaxStringBytes = int.MaxValue,
        MaxBinaryBytes = int.MaxValue,
        MaxArrayCount = int.MaxValue,
        MaxMapCount = int.MaxValue,
        MaxTotalElements = int.MaxValue,
    };

    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    private static RpcException DecodeFails(byte[] input, MsgPackLimits? limits = null)
    {
        var e = Assert.Throws<RpcException>(() => MsgPack.Decode(input, limits));
        Assert.True(e.IsProtocolError);
        Assert.Equal(RpcErrorCodes.BadRequest, e.Code);
        return e;
    }

    // Frames the first message of input with a fresh framer; false (nothing cut off) when more bytes are needed.
    private static bool TryFrame(byte[] input, MsgPackLimits? limits, out ReadOnlySequence<byte> frame, out long rest)
    {
        var framer = new MsgPackFramer(limits);
        var buffer = new ReadOnlySequence<byte>(input);
        bool framed = framer.TryReadFrame(ref buffer, out frame);
        rest = buffer.Length;
        return framed;
    }

    private static RpcException FrameFails(byte[] input, MsgPackLimits? limits = null) =>
        Assert.Throws<RpcException>(() => TryFrame(input, limits, out _, out _));

    [Fact]
    public void NeverUsedByte_IsMalformed()
    {
        Assert.Equal(RpcProtocolFault.Malformed, DecodeFails(Hex("c1")).ProtocolFault);
        var e = DecodeFails(Hex("93 01 02 c1"));
        Assert.Equal(RpcProtocolFault.Malformed, e.ProtocolFault);
        Assert.Equal(3, e.Offset);
    }

    [Fact]
    public void TrailingBytes_AreMalformed()
    {
        Assert.Equal(RpcProtocolFault.Malformed, DecodeFails(Hex("c0 c0")).ProtocolFault);
    }

    [Fact]
    public void InvalidUtf8String_IsMalformed()
    {
        Assert.Equal(RpcProtocolFault.Malformed, DecodeFails(Hex("a2 c3 28")).ProtocolFault);
        Assert.Equal(RpcProtocolFault.Malformed, DecodeFails(Hex("a3 ed a0 80")).ProtocolFault); // encoded surrogate
    }

    [Fact]
    public void EveryProperPrefixOfEveryVector_NeedsMoreData()
    {
        int checkedPrefixes = 0;
        foreach (var bytes in TestVectors.AllEncodings().Append(SampleRequest()))
        {
            for (int n = 0; n < bytes.Length; n++)
            {
                var framer = new MsgPackFramer(null);
                var prefix = new ReadOnlySequence<byte>(bytes, 0, n);
                var buffer = prefix;
                Assert.False(framer.TryReadFrame(ref buffer, out _), $"prefix {n} of {Convert.ToHexString(bytes)} framed");
                Assert.Equal(prefix.Length, buffer.Length); // nothing consumed
                // Resuming with the same bytes still needs more; resuming with all of them frames the whole value.
                Assert.False(framer.TryReadFrame(ref buffer, out _));
                var whole = new ReadOnlySequence<byte>(bytes);
                Assert.True(framer.TryReadFrame(ref whole, out var resumed), $"resuming after prefix {n} of {Convert.ToHexString(bytes)}");
                Assert.Equal(bytes.Length, resumed.Length);
                var e = Assert.Throws<RpcException>(() => MsgPack.Decode(bytes.AsMemory(0, n)));
                Assert.Equal(RpcProtocolFault.Truncated, e.ProtocolFault);
                checkedPrefixes++;
            }
            // And the whole thing does frame and decode.
            Assert.True(TryFrame(bytes, null, out var frame, out long rest));
            Assert.Equal(bytes.Length, frame.Length);
            Assert.Equal(0, rest);
            MsgPack.Decode(bytes);
        }
        Assert.True(checkedPrefixes > 500);
    }

    private static byte[] SampleRequest() => MsgPack.Encode(MsgValue.FromArray(0, 7, "generate",
        MsgValue.FromArray(MsgValue.Map(("prompt", "Hi"), ("max_tokens", 16), ("stream", true), ("t", MsgValue.FromTimestamp(1, 2))))));

    [Theory]
    [InlineData("db ffffffff 6162")]       // str32 of 4 GiB, 2 bytes present
    [InlineData("c6 ffffffff 00")]         // bin32 of 4 GiB
    [InlineData("c9 ffffffff 01 00")]      // ext32 of 4 GiB (huge ext)
    [InlineData("dd ffffffff 01")]         // array32 of 4 G items
    [InlineData("df 20000000 01")]         // map32 of 2^29 pairs
    [InlineData("df 40000000 01 01")]      // map32 of 2^30 pairs: 2^31 items overflows int
    [InlineData("dc 270f")]                // array16 of 9999, no body
    [InlineData("91 dd 7fffffff")]         // nested huge array
    public void HugeDeclaredSizes_FailBeforeAllocating(string hex)
    {
        byte[] input = Hex(hex);
        foreach (var limits in new[] { MsgPackLimits.Default, Huge })
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            var e = DecodeFails(input, limits);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(e.ProtocolFault is RpcProtocolFault.LimitExceeded or RpcProtocolFault.Truncated, $"{hex}: {e.ProtocolFault}");
            // The exception and its message are all that may be allocated: nowhere near the declared size.
            Assert.True(allocated < 64 * 1024, $"{hex} with {(limits == Huge ? "huge" : "default")} limits allocated {allocated} bytes");

            try
            {
                Assert.False(TryFrame(input, limits, out _, out _)); // need more data (or a limit error below)
            }
            catch (RpcException ex)
            {
                Assert.Equal(RpcProtocolFault.LimitExceeded, ex.ProtocolFault);
            }
        }
        // With the default caps the declared size itself is refused, not merely found short.
        if (hex != "dc 270f")
        {
            Assert.Equal(RpcProtocolFault.LimitExceeded, DecodeFails(input).ProtocolFault);
        }
    }

    [Fact]
    public void DeclaredCount_LargerThanTheMessageLimit_IsRefusedBeforeTheBytesArrive()
    {
        var limits = new MsgPackLimits { MaxMessageBytes = 1000 };
        var e = FrameFails(Hex("dc 07d0"), limits); // 2000 items cannot fit in 1000 bytes
        Assert.Equal(RpcProtocolFault.LimitExceeded, e.ProtocolFault);
    }

    // Built in the test, not passed as theory data: xunit would serialize 100 000-byte arrays at discovery.
    private static byte[] DeepInput(string kind)
    {
        if (kind == "arrays")
        {
            var arrays = new byte[100_001];           // 100 000 x 91, then c0
            arrays.AsSpan(0, 100_000).Fill(0x91);
            arrays[^1] = 0xc0;
            return arrays;
        }
        var maps = new byte[200_001];                 // 100 000 x (81 c0), then c0
        for (int i = 0; i < 100_000; i++)
        {
            maps[2 * i] = 0x81;
            maps[2 * i + 1] = 0xc0;
        }
        maps[^1] = 0xc0;
        return maps;
    }

    [Theory]
    [InlineData("arrays")]
    [InlineData("maps")]
    public async Task DeepNesting_IsADepthError_WhenDecodingSkippingAndStreaming(string name)
    {
        byte[] input = DeepInput(name);
        Assert.Equal(RpcProtocolFault.DepthExceeded, DecodeFails(input).ProtocolFault);
        Assert.Equal(RpcProtocolFault.DepthExceeded, FrameFails(input).ProtocolFault);
        // Streaming: the bytes arrive through a pipe in its own small segments (no back-pressure: written at once).
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0));
        await pipe.Writer.WriteAsync(input);
        await pipe.Writer.CompleteAsync();
        var messages = new MsgPackMessageReader(pipe.Reader);
        Assert.Equal(RpcProtocolFault.DepthExceeded, (await Assert.ThrowsAsync<RpcException>(async () => await messages.ReadAsync())).ProtocolFault);

        // Even with the depth limit raised to the input's depth, decoding is iterative: no stack overflow.
        var deep = new MsgPackLimits { MaxDepth = 200_000, MaxMessageBytes = input.Length, MaxTotalElements = input.Length };
        var value = MsgPack.Decode(input, deep);
        Assert.True(value.Kind is MsgValueKind.Array or MsgValueKind.Map, name);
        Assert.Equal(input, MsgPack.Encode(value)); // the writer is iterative too
    }

    [Fact]
    public void DepthLimit_IsExact()
    {
        var limits = new MsgPackLimits { MaxDepth = 3 };
        Assert.Equal(MsgValueKind.Array, MsgPack.Decode(Hex("91 91 91 c0"), limits).Kind);
        Assert.Equal(RpcProtocolFault.DepthExceeded, DecodeFails(Hex("91 91 91 91 c0"), limits).ProtocolFault);
        // Empty containers open no level.
        Assert.Equal(MsgValueKind.Array, MsgPack.Decode(Hex("91 91 91 90"), limits).Kind);
    }

    [Fact]
    public async Task ManyCollidingIntegerKeys_DecodeInLinearTime()
    {
        // Keys i·(2^32+1): long.GetHashCode() xors the halves, so every key hashes to 0. A decoder that put them in
        // a Dictionary would do ~n²/2 = 2·10^10 comparisons; ours keeps the ordered pairs and never hashes.
        const int n = 200_000;
        var entries = new KeyValuePair<MsgValue, MsgValue>[n];
        for (int i = 0; i < n; i++)
        {
            long key = (long)i * ((1L << 32) + 1);
            entries[i] = new(MsgValue.FromInt64(key), MsgValue.FromInt64(i & 0x7f));
        }
        Assert.Single(entries.Take(1000).Select(e => e.Key.AsInt64().GetHashCode()).Distinct());
        byte[] input = MsgPack.Encode(MsgValue.FromMap(entries));
        var limits = new MsgPackLimits { MaxMapCount = n, MaxTotalElements = 2 * n + 1, MaxMessageBytes = input.Length };

        // A generous bound (linear work here is tens of milliseconds; quadratic would be minutes), not a timing assertion.
        var decoded = await Task.Run(() => MsgPack.Decode(input, limits)).WaitAsync(TimeSpan.FromSeconds(20));
        var map = decoded.AsMap();
        Assert.Equal(n, map.Length);
        Assert.Equal((long)(n - 1) * ((1L << 32) + 1), map[n - 1].Key.AsInt64());
        Assert.Equal(MsgValue.FromInt64((n - 1) & 0x7f), map[n - 1].Value);
    }

    [Theory]
    [InlineData("d4 ff 00")]                         // fixext 1, type -1
    [InlineData("d5 ff 0000")]                       // fixext 2
    [InlineData("d8 ff 00000000000000000000000000000000")] // fixext 16
    [InlineData("c7 05 ff 0000000000")]              // ext8 of 5
    [InlineData("c7 00 ff")]                         // ext8 of 0
    public void TimestampOfWrongLength_IsMalformed(string hex)
    {
        Assert.Equal(RpcProtocolFault.Malformed, DecodeFails(Hex(hex)).ProtocolFault);
    }

    [Theory]
    [InlineData("d7 ff ee6b2800 00000000")]               // 64-bit form, nsec = 1e9 (1e9 << 2 = 0xee6b2800)
    [InlineData("d7 ff ffffffff 00000000")]               // 64-bit form, nsec = 2^30 - 1
    [InlineData("c7 0c ff 3b9aca00 0000000000000000")]    // 96-bit form, nsec = 1e9
    [InlineData("c7 0c ff ffffffff 0000000000000000")]    // 96-bit form, nsec = 2^32 - 1
    public void TimestampNanosecondsOfOneSecondOrMore_AreMalformed(string hex)
    {
        Assert.Equal(RpcProtocolFault.Malformed, DecodeFails(Hex(hex)).ProtocolFault);
        Assert.Equal(RpcProtocolFault.Malformed, FrameFails(Hex(hex)).ProtocolFault);
    }

    [Fact]
    public void LimitsOnStringBinaryArrayMapAndTotal_AreEnforcedExactly()
    {
        var limits = new MsgPackLimits { MaxStringBytes = 3, MaxBinaryBytes = 2, MaxArrayCount = 2, MaxMapCount = 1, MaxTotalElements = 4 };
        Assert.Equal("abc", MsgPack.Decode(Hex("a3 616263"), limits).AsString());
        Assert.Equal(RpcProtocolFault.LimitExceeded, DecodeFails(Hex("a4 61626364"), limits).ProtocolFault);
        Assert.Equal(2, MsgPack.Decode(Hex("c4 02 0102"), limits).Count);
        Assert.Equal(RpcProtocolFault.LimitExceeded, DecodeFails(Hex("c4 03 010203"), limits).ProtocolFault);
        Assert.Equal(RpcProtocolFault.LimitExceeded, DecodeFails(Hex("d4 01 00 "), limits with { MaxBinaryBytes = 0 }).ProtocolFault);
        Assert.Equal(2, MsgPack.Decode(Hex("92 01 02"), limits).Count);
        Assert.Equal(RpcProtocolFault.LimitExceeded, DecodeFails(Hex("93 01 02 03"), limits).ProtocolFault);
        Assert.Equal(1, MsgPack.Decode(Hex("81 01 02"), limits).Count);
        Assert.Equal(RpcProtocolFault.LimitExceeded, DecodeFails(Hex("82 01 02 03 04"), limits).ProtocolFault);
        // 1 array + 2 items + 1 nested item = 4 elements; one more is over.
        Assert.Equal(2, MsgPack.Decode(Hex("92 01 91 02"), limits).Count);
        Assert.Equal(RpcProtocolFault.LimitExceeded, DecodeFails(Hex("92 91 01 91 02"), limits).ProtocolFault);
        var small = new MsgPackLimits { MaxMessageBytes = 4 };
        Assert.Equal(3, MsgPack.Decode(Hex("93 01 02 03"), small).Count);
        Assert.Equal(RpcProtocolFault.LimitExceeded, DecodeFails(Hex("94 01 02 03 04"), small).ProtocolFault);
    }
}
