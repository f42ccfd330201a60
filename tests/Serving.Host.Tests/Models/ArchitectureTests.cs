using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Models;
using Serving.Engine.Synthetic;

namespace Serving.Host.Tests.Models;

/// <summary>
/// The Llama family's variations, each end to end against the float64 reference: GQA, qwen2 (NeoX RoPE and
/// q/k/v biases), mistral keys, and linear RoPE scaling from metadata.
/// </summary>
[Collection("tiny")]
[Trait("Category", "Slow")]
public sealed class ArchitectureTests(TinyModelFixture fixture) : IDisposable
{
    private static readonly SyntheticShape Gqa = new("gqa-test", Dim: 256, Layers: 2, Heads: 8, KvHeads: 2, FeedForward: 512, Vocab: 32000, Context: 512, RopeTheta: 500000f);
    private static readonly int[] Prompt = [1, 450, 4996, 17354, 1701, 432, 17204, 29889, 13];
    private readonly string _dir = Directory.CreateTempSubdirectory("serving-arch-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string GqaModel()
    {
        string path = Path.Combine(_dir, "gqa.gguf");
        SyntheticModel.Create(Gqa, DataType.F32, path, seed: 3);
        return path;
    }

    /// <summary>Rewrites a llama file as another architecture: keys re-prefixed, metadata edited, tensors added.</summary>
    private string Rewrite(string source, string arch, Action<GgufWriter, GgufFile>? extra = null, Func<string, GgufValue, GgufValue>? edit = null)
    {
        using var file = GgufFile.Open(source);
        var writer = new GgufWriter();
        foreach (string key in file.Metadata.Keys)
        {
            var value = file.Metadata[key];
            if (key == "general.architecture") value = GgufValue.Scalar(GgufValueType.String, arch);
            string name = key.StartsWith("llama.", StringComparison.Ordinal) ? arch + key[5..] : key;
            writer.Add(name, edit?.Invoke(name, value) ?? value);
        }
        foreach (var t in file.Tensors)
            writer.AddTensor(t.Name, t.Type, t.Dims, file.GetTensorBytes(t).ToArray());
        extra?.Invoke(writer, file);
        string path = Path.Combine(_dir, $"{arch}-{Guid.NewGuid():N}.gguf");
        writer.WriteTo(path);
        return path;
    }

    private void MatchesReference(string path, Action<LlamaConfig>? check = null)
    {
        using var file = GgufFile.Open(path);
        using var model = LlamaModel.Load(file, fixture.Device, new ModelOptions { MaxBatchTokens = 16, MaxBatchSequences = 1, KvCacheTokens = 64 });
        check?.Invoke(model.Config);
        var batch = new StepBatch(16, 1, model.MaxBlocksPerSequence);
        ForwardPassTests.AddSequence(batch, Prompt, 0, 0, model.KvBlockSize, allLogits: true);
        var logits = new float[Prompt.Length * model.VocabSize];
        model.Forward(batch, logits);
        var expected = ReferenceLlama.Forward(file, model.Config, Prompt, model.KvCacheType);
        double err = 0, norm = 0;
        for (int t = 0; t < Prompt.Length; t++)
            for (int i = 0; i < model.VocabSize; i++)
            {
                double d = logits[t * model.VocabSize + i] - expected[t][i];
                err += d * d;
                norm += expected[t][i] * expected[t][i];
            }
        Assert.True(err / norm < 1e-8, $"{model.Config.Architecture}: normalized MSE {err / norm:E3}");
    }

    [Fact]
    public void GroupedQueryAttention_MatchesReference() =>
        MatchesReference(GqaModel(), c => Assert.Equal((8, 2), (c.Heads, c.KvHeads)));

    [Fact]
    public void Qwen2_UsesNeoXRope_AndQkvBiases()
    {
        var rng = new Random(5);
        string path = Rewrite(GqaModel(), "qwen2", (w, f) =>
        {
            for (int l = 0; l < Gqa.Layers; l++)
                foreach (var (name, n) in new[] { ("q", Gqa.Dim), ("k", Gqa.KvDim), ("v", Gqa.KvDim) })
                    w.AddTensor($"blk.{l}.attn_{name}.bias", DataType.F32, [n], Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray());
        });
        MatchesReference(path, c => Assert.Equal(RopeStyle.NeoX, c.RopeStyle));
    }

    [Fact]
    public void Mistral_ReadsItsOwnKeys() =>
        MatchesReference(Rewrite(GqaModel(), "mistral"), c => Assert.Equal(RopeStyle.Normal, c.RopeStyle));

    [Fact]
    public void LinearRopeScaling_FromMetadata()
    {
        string path = Rewrite(GqaModel(), "llama", (w, _) =>
        {
            w.Add("llama.rope.scaling.type", "linear");
            w.Add("llama.rope.scaling.factor", 4f);
        });
        MatchesReference(path, c => Assert.Equal(0.25f, c.RopeFrequencyScale));
    }

    [Fact]
    public void UnsupportedRopeScaling_IsRefusedByName()
    {
        string path = Rewrite(GqaModel(), "llama", (w, _) => w.Add("llama.rope.scaling.type", "yarn"));
        using var file = GgufFile.Open(path);
        var e = Assert.Throws<ModelLoadException>(() => LlamaModel.Load(file, fixture.Device));
        Assert.Equal("llama.rope.scaling.type", e.Field);
    }
}
