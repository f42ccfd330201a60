using System.Buffers;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Serving.Protocol.MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Bench;

/// <summary>
/// The RPC codec on the two messages that dominate serving traffic, each encoded and decoded the way the server
/// and the client do it: a <c>generate</c> request <c>[0, msgid, "generate", [{prompt, max_tokens, temperature,
/// top_p, seed, stream}]]</c> (decoded from the socket's bytes through framing, the message shape and the argument
/// reads of the generate handler), and a <c>generate.token</c> notification <c>[2, "generate.token", [{id, text,
/// token}]]</c> (one per streamed token; decoded as the client's reader does). Time and bytes allocated are per
/// message. Run: <c>dotnet run -c Release --project bench/Serving.Bench -- --filter *Codec*</c>.
/// </summary>
[Config(typeof(CodecConfig))]
[MemoryDiagnoser]
public class CodecBenchmarks
{
    // A short chat-sized prompt (about 40 tokens): the size most requests have.
    private const string Prompt =
        "You are a helpful assistant. Summarize the following story in two sentences: Once upon a time, a small " +
        "dragon lived in a cave above the village and guarded its library.";

    private readonly ArrayBufferWriter<byte> _output = new(4096);
    private ReadOnlySequence<byte> _request;
    private ReadOnlySequence<byte> _token;
    private MsgPackFramer _framer;

    /// <summary>Encodes one message of each kind for the decode benchmarks.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _framer = new MsgPackFramer(MsgPackLimits.Default);
        _request = new ReadOnlySequence<byte>(EncodeOnce(() => EncodeRequest()));
        _token = new ReadOnlySequence<byte>(EncodeOnce(() => EncodeToken()));
        // Check once that the decoders see what the encoders wrote, so a broken codec cannot report a fast time.
        if (DecodeRequest() != 128 + Prompt.Length || DecodeToken() != 1234 + 4)
        {
            throw new InvalidOperationException("codec benchmark messages do not round-trip");
        }
    }

    private byte[] EncodeOnce(Func<int> encode)
    {
        encode();
        return _output.WrittenSpan.ToArray();
    }

    /// <summary>The client writes a generate request (argument map built from the options, then the frame).</summary>
    [Benchmark]
    public int EncodeRequest()
    {
        _output.ResetWrittenCount();
        var args = MsgValue.Map(("prompt", Prompt), ("max_tokens", 128), ("temperature", 0.8), ("top_p", 0.95),
            ("seed", 42UL), ("stream", true));
        RpcMessage.WriteRequest(_output, 7, "generate", args);
        return _output.WrittenCount;
    }

    /// <summary>
    /// The server reads a generate request from its input buffer (the pipe's bytes): framing (limits enforced),
    /// decoding, the message shape, and the reads the generate handler makes of each argument.
    /// </summary>
    [Benchmark]
    public long DecodeRequest()
    {
        var message = Read(_request);
        var args = RpcArgs.FromParams(message.Params);
        args.EnsureOnly("prompt", "tokens", "max_tokens", "temperature", "top_k", "top_p", "min_p", "repeat_penalty",
            "repeat_last_n", "seed", "stop", "stream", "add_bos", "model");
        string prompt = args.GetString("prompt");
        long maxTokens = args.GetOptionalInt64("max_tokens", 1, 4096) ?? 128;
        double temperature = args.GetOptionalDouble("temperature", 0, 100) ?? 0.8;
        double topP = args.GetOptionalDouble("top_p", 1e-6, 1) ?? 0.95;
        bool stream = args.GetBool("stream", false);
        args.Get("seed").TryGetUInt64(out ulong seed);
        return stream && temperature > 0 && topP > 0 && seed == 42 ? maxTokens + prompt.Length : -1;
    }

    // What the server's and the client's read loops do with the bytes of one message: frame it (limits enforced)
    // and classify it.
    private RpcMessage Read(ReadOnlySequence<byte> bytes)
    {
        if (!_framer.TryReadFrame(ref bytes, out var frame))
        {
            throw new InvalidOperationException("incomplete message");
        }
        return RpcMessage.Parse(frame);
    }

    /// <summary>The server writes one streamed token as a <c>generate.token</c> notification.</summary>
    [Benchmark]
    public int EncodeToken()
    {
        _output.ResetWrittenCount();
        RpcMessage.WriteNotification(_output, "generate.token", MsgValue.Map(("id", 7L), ("text", " the"), ("token", 1234)));
        return _output.WrittenCount;
    }

    /// <summary>The client reads one <c>generate.token</c> notification: framing, decoding, shape and its three fields.</summary>
    [Benchmark]
    public long DecodeToken()
    {
        var message = Read(_token);
        var args = RpcArgs.FromParams(message.Params);
        long id = args.GetInt64("id", 0, uint.MaxValue);
        long token = args.GetInt64("token", -1, int.MaxValue);
        string text = args.GetString("text");
        return message.Method == "generate.token" && id == 7 ? token + text.Length : -1;
    }
}

/// <summary>
/// A short in-process job for the codec micro-benchmarks: each call takes about a microsecond, so 3 warm-up and
/// 15 measured iterations of ~0.5 s each give stable means in well under a minute per benchmark. Min and median
/// are shown beside the mean: on a shared machine they are what other processes disturb least.
/// </summary>
public sealed class CodecConfig : ManualConfig
{
    /// <summary>Creates the config.</summary>
    public CodecConfig()
    {
        AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(15)
            .WithId("codec"));
        AddColumn(StatisticColumn.Min, StatisticColumn.Median);
    }
}
