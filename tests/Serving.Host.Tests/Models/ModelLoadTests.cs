using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Models;

namespace Serving.Host.Tests.Models;

/// <summary>
/// Valid GGUF that is not a runnable model: each case gets a <see cref="ModelLoadException"/> naming the key or
/// tensor, and nothing of the failed load stays allocated on the device.
/// </summary>
[Collection("tiny")]
[Trait("Category", "Slow")]
public sealed class ModelLoadTests(TinyModelFixture fixture) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("serving-badmodel-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Copies the tiny model, letting <paramref name="edit"/> change metadata and drop or replace tensors.</summary>
    private string Variant(string name, Func<string, GgufValue, GgufValue?> metadata, Func<GgufTensorInfo, bool> keepTensor,
        Action<GgufWriter>? extra = null)
    {
        using var source = GgufFile.Open(fixture.PathOf(DataType.Q8_0));
        var writer = new GgufWriter();
        foreach (string key in source.Metadata.Keys)
            if (metadata(key, source.Metadata[key]) is { } value)
                writer.Add(key, value);
        extra?.Invoke(writer);
        foreach (var t in source.Tensors.Where(keepTensor))
            writer.AddTensor(t.Name, t.Type, t.Dims, source.GetTensorBytes(t).ToArray());
        string path = Path.Combine(_dir, name + ".gguf");
        writer.WriteTo(path);
        return path;
    }

    private ModelLoadException LoadFails(string path)
    {
        using var file = GgufFile.Open(path);
        return Assert.Throws<ModelLoadException>(() => LlamaModel.Load(file, fixture.Device, new ModelOptions { KvCacheTokens = 64 }));
    }

    [Fact]
    public void MissingTensor_NamesIt()
    {
        var e = LoadFails(Variant("no-q", (_, v) => v, t => t.Name != "blk.3.attn_q.weight"));
        Assert.Equal("blk.3.attn_q.weight", e.Field);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void MissingHyperParameter_NamesTheKey()
    {
        var e = LoadFails(Variant("no-heads", (k, v) => k == "llama.attention.head_count" ? null : v, _ => true));
        Assert.Equal("llama.attention.head_count", e.Field);
    }

    [Fact]
    public void ShapeInconsistentWithHyperParameters_NamesTensorAndShapes()
    {
        // Claim a wider FFN than the tensors have: the first FFN tensor checked must say expected vs actual.
        var e = LoadFails(Variant("wide-ffn", (k, v) => k == "llama.feed_forward_length" ? GgufValue.Scalar(GgufValueType.UInt32, 1024u) : v, _ => true));
        Assert.Equal("blk.0.ffn_gate.weight", e.Field);
        Assert.Contains("expected [288, 1024]", e.Message);
    }

    [Fact]
    public void KvHeadsNotDividingHeads_IsRefused()
    {
        var e = LoadFails(Variant("kv4", (k, v) => k == "llama.attention.head_count_kv" ? GgufValue.Scalar(GgufValueType.UInt32, 4u) : v, _ => true));
        Assert.Equal("llama.attention.head_count_kv", e.Field);
    }

    [Fact]
    public void UnsupportedArchitecture_ListsSupported()
    {
        var e = LoadFails(Variant("arch", (k, v) => k == "general.architecture" ? GgufValue.Scalar(GgufValueType.String, "mamba") : v, _ => true));
        Assert.Contains("llama, mistral, qwen2", e.Message);
    }

    [Fact]
    public void VocabularyOnlyFile_SaysItIsNotAModel()
    {
        var e = LoadFails(Variant("vocab-only", (k, v) => k.StartsWith("general.architecture", StringComparison.Ordinal) ? null : v, _ => false));
        Assert.Equal("general.architecture", e.Field);
    }

    [Fact]
    public void FailedLoads_LeaveTheDeviceUsable_AndAGoodModelStillRuns()
    {
        for (int i = 0; i < 3; i++) LoadFails(Variant($"again{i}", (_, v) => v, t => t.Name != "output_norm.weight"));
        using var file = GgufFile.Open(fixture.PathOf(DataType.Q8_0));
        using var model = LlamaModel.Load(file, fixture.Device, new ModelOptions { MaxBatchTokens = 4, MaxBatchSequences = 1, KvCacheTokens = 64 });
        var batch = new StepBatch(4, 1, model.MaxBlocksPerSequence);
        ForwardPassTests.AddSequence(batch, [1, 2, 3], 0, 0, model.KvBlockSize, allLogits: false);
        var logits = new float[model.VocabSize];
        model.Forward(batch, logits);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>The Cpu device, except that <see cref="Supports"/> refuses one op (optionally only for one type) and
    /// every allocation is counted.</summary>
    private sealed class RefusingAccelerator(IAccelerator inner, OpKind refused, DataType? refusedType = null) : IAccelerator
    {
        public int Allocations;
        public DeviceDescriptor Descriptor => inner.Descriptor;
        public long FreeMemoryBytes => inner.FreeMemoryBytes;
        public IEnergyMeter? EnergyMeter => inner.EnergyMeter;
        public IDeviceBuffer Allocate(long bytes) { Allocations++; return inner.Allocate(bytes); }
        public IDeviceWeight PrepareWeight(in WeightSource source) { Allocations++; return inner.PrepareWeight(source); }
        public IKvCache CreateKvCache(in KvCacheSpec spec) { Allocations++; return inner.CreateKvCache(spec); }
        public void Upload(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source) => inner.Upload(destination, offset, source);
        public void Download(IDeviceBuffer source, long offset, Span<byte> destination) => inner.Download(source, offset, destination);
        public IComputeStream CreateStream() { Allocations++; return inner.CreateStream(); }
        public IReadOnlyList<KernelVariant> GetVariants(OpKind op, DataType type) => inner.GetVariants(op, type);
        public void Dispose() { }

        public OpSupport Supports(in OpQuery query) =>
            query.Op == refused && (refusedType is null || query.Type == refusedType)
                ? OpSupport.No("refused by the test")
                : inner.Supports(query);
    }

    [Theory]
    [InlineData(OpKind.MatMul, "token_embd.weight", "MatMul q8_0 [32000, 288]")] // tied: the embedding is the output head
    [InlineData(OpKind.Embed, "token_embd.weight", "Embed q8_0 [32000, 288]")]
    [InlineData(OpKind.Attention, "KV cache", "Attention f16 H 6, Hkv 6, Dh 48, context")]
    [InlineData(OpKind.Argmax, "Argmax", "Argmax f32 width 32000")]
    [InlineData(OpKind.Gather, "Gather", "Gather f32 width 288")]
    public void DeviceRefusingAnOp_RefusesTheModelAtLoad_NamingOpTypeAndShape_BeforeAllocating(OpKind op, string field, string named)
    {
        var device = new RefusingAccelerator(fixture.Device, op);
        using var file = GgufFile.Open(fixture.PathOf(DataType.Q8_0));
        var e = Assert.Throws<ModelLoadException>(() => LlamaModel.Load(file, device, new ModelOptions { KvCacheTokens = 64 }));
        Assert.Equal(field, e.Field);
        Assert.Contains($"cpu:0 cannot run {named}", e.Message);
        Assert.Contains("refused by the test", e.Message);
        Assert.Equal(0, device.Allocations);
    }

    [Fact]
    public void DeviceWithoutAnF16Cache_GetsAnF32Cache()
    {
        var device = new RefusingAccelerator(fixture.Device, OpKind.KvWrite, DataType.F16);
        using var file = GgufFile.Open(fixture.PathOf(DataType.Q8_0));
        using var model = LlamaModel.Load(file, device, new ModelOptions { KvCacheTokens = 64 });
        Assert.Equal(DataType.F32, model.KvCacheType);
    }
}
