using System.Buffers.Binary;
using System.Diagnostics;
using Serving.Engine.Gguf;
using Serving.Host.Tests.Interop;
using Serving.Host.Tests.Rpc;
using Serving.Protocol.MessagePack;

namespace Serving.Host.Tests.Serve;

/// <summary>
/// Model files with poisoned weights or inconsistent metadata, served: metadata that disagrees is refused at load with a
/// clear error, <c>--check-tensors</c> finds NaN and Inf weights before loading (naming the tensor and where), and without
/// it a step whose logits are not finite fails its requests with a clear error instead of sampling garbage — while the
/// server, its device and its other methods keep working.
/// </summary>
[Collection("rpc")]
[Trait("Category", "Slow")]
public sealed class PoisonedModelTests(RpcHostFixture fixture) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("serving-poisoned-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>The fixture's tiny q8_0 model with <paramref name="poison"/> applied to the named tensors' bytes and
    /// <paramref name="metadata"/> to its keys.</summary>
    private string Variant(string name, Func<string, GgufValue, GgufValue>? metadata = null, Dictionary<string, Action<byte[]>>? poison = null)
    {
        using var source = GgufFile.Open(fixture.ModelPath);
        var writer = new GgufWriter();
        foreach (string key in source.Metadata.Keys)
            writer.Add(key, metadata?.Invoke(key, source.Metadata[key]) ?? source.Metadata[key]);
        foreach (var t in source.Tensors)
        {
            byte[] bytes = source.GetTensorBytes(t).ToArray();
            if (poison is not null && poison.TryGetValue(t.Name, out var edit)) edit(bytes);
            writer.AddTensor(t.Name, t.Type, t.Dims, bytes);
        }
        string path = Path.Combine(_dir, name + ".gguf");
        writer.WriteTo(path);
        return path;
    }

    private const int Q8Block = 34; // f16 scale d, then 32 int8 values

    /// <summary>Every q8_0 block's scale NaN: the whole embedding is NaN.</summary>
    private string NanEmbedding() => Variant("nan-embedding", poison: new()
    {
        ["token_embd.weight"] = b =>
        {
            for (int o = 0; o < b.Length; o += Q8Block) BinaryPrimitives.WriteHalfLittleEndian(b.AsSpan(o), Half.NaN);
        },
    });

    /// <summary>Block 3 of one layer's FFN down projection gets an infinite scale.</summary>
    private string InfScale() => Variant("inf-scale", poison: new()
    {
        ["blk.0.ffn_down.weight"] = b => BinaryPrimitives.WriteHalfLittleEndian(b.AsSpan(3 * Q8Block), Half.PositiveInfinity),
    });

    [Fact]
    public async Task NaNEmbedding_GreedyAndSampledGenerates_FailWithAClearError_TheServerKeepsServing()
    {
        string model = NanEmbedding();
        await using var host = fixture.Start(o => o with { ModelPath = model });
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        foreach (double temperature in new[] { 0.0, 0.8 }) // the device argmax path and the sampled path
        {
            var r = await c.CallAsync("generate", Args.Generate("Once upon a time", 8, extra: ("temperature", temperature)));
            Assert.Equal("internal", r.Code);
            Assert.Equal("non_finite_logits", Args.Str(r.Data, "reason"));
            Assert.Contains("NaN or infinite logits", r.Message, StringComparison.Ordinal);
            Assert.Contains("--check-tensors", r.Message, StringComparison.Ordinal);
        }
        // Streamed: no garbage token is sent before the error.
        uint id = await c.SendRequestAsync("generate", Args.Generate("Hi", 8, stream: true));
        Assert.Equal("non_finite_logits", Args.Str((await c.WaitReplyAsync(id)).Data, "reason"));
        Assert.DoesNotContain(c.Notifications, n => n.Method == "generate.token");

        // Only those requests failed: the device is not faulted and the other methods work.
        var health = (await c.CallAsync("health")).Result;
        Assert.Equal("ok", Args.Str(health, "status"));
        Assert.False((await c.CallAsync("tokenize", Args.Of(("text", "Hello")))).IsError);
        var m = (await c.CallAsync("metrics")).Result;
        Assert.Equal(3, Args.Int(m, "failed"));
        Assert.Equal(0, Args.Int(m, "kv_blocks_used"));
    }

    [Fact]
    public async Task InfiniteQuantScale_GenerateFails_WithTheSameClearError()
    {
        await using var host = fixture.Start(o => o with { ModelPath = InfScale() });
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        var r = await c.CallAsync("generate", Args.Generate("Once upon a time", 4));
        Assert.Equal("non_finite_logits", Args.Str(r.Data, "reason"));
    }

    [Fact]
    public async Task ServeProcess_RefusesPoisonedOrInconsistentFiles_AtLoad_NamingWhat()
    {
        // --check-tensors scans the weights before loading: the NaN embedding and the infinite scale are named.
        var nan = await ServeUntilExitAsync(NanEmbedding(), "--check-tensors");
        Assert.Equal(2, nan.Exit);
        Assert.Contains("token_embd.weight", nan.Stderr, StringComparison.Ordinal);
        Assert.Contains("NaN scale", nan.Stderr, StringComparison.Ordinal);

        var inf = await ServeUntilExitAsync(InfScale(), "--check-tensors");
        Assert.Equal(2, inf.Exit);
        Assert.Contains("blk.0.ffn_down.weight", inf.Stderr, StringComparison.Ordinal);
        Assert.Contains("block 3 ", inf.Stderr, StringComparison.Ordinal);
        Assert.Contains("+Inf", inf.Stderr, StringComparison.Ordinal);

        // Metadata consistency is always checked: a vocab_size that disagrees with the tokenizer.
        string vocab = Variant("vocab", (k, v) => k == "llama.vocab_size" ? GgufValue.Scalar(GgufValueType.UInt32, 32001u) : v);
        var mismatch = await ServeUntilExitAsync(vocab);
        Assert.Equal(2, mismatch.Exit);
        Assert.Contains("llama.vocab_size", mismatch.Stderr, StringComparison.Ordinal);
        Assert.Contains("32001", mismatch.Stderr, StringComparison.Ordinal);
        Assert.Contains("32000", mismatch.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("listening on", mismatch.Stdout, StringComparison.Ordinal);
    }

    /// <summary>Runs <c>serve</c> on <paramref name="model"/>, which must exit on its own (a refused load).</summary>
    private static Task<(int Exit, string Stdout, string Stderr)> ServeUntilExitAsync(string model, params string[] extra)
    {
        string baseDir = AppContext.BaseDirectory;
        var psi = new ProcessStartInfo("dotnet");
        foreach (string a in new[] { Path.Combine(baseDir, "Serving.Host.dll"), "serve", "--model", model, "--port", "0",
                     "--device", "cpu:0", "--plugins", Path.Combine(baseDir, "plugins") }.Concat(extra))
            psi.ArgumentList.Add(a);
        return ChildProcess.RunToEndAsync(psi, TimeSpan.FromSeconds(120));
    }
}
