using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Quantization;
using Serving.Engine.Synthetic;
using Serving.Engine.Tests.Gguf;

namespace Serving.Engine.Tests.Synthetic;

/// <summary>Synthetic llama models (tiny shape only, to keep the suite fast): keys, tensors, values, determinism.</summary>
[Trait("Category", "Slow")]
public sealed class SyntheticModelTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("synthetic-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(DataType.F32, 0u)]
    [InlineData(DataType.F16, 1u)]
    [InlineData(DataType.BF16, 32u)]
    [InlineData(DataType.Q8_0, 7u)]
    [InlineData(DataType.Q4_0, 2u)]
    [InlineData(DataType.Q5_0, 8u)]
    public void Tiny_model_has_llama_keys_and_tensors(DataType type, uint fileType)
    {
        string path = Path.Combine(_dir, $"tiny-{type}.gguf");
        SyntheticModel.Create("tiny", type, path);
        using var f = GgufFile.Open(path);
        var m = f.Metadata;
        const int d = 288, layers = 6, ff = 768, vocab = 32000;

        Assert.Equal("llama", m.GetString("general.architecture"));
        Assert.Equal($"synthetic-llama-tiny-{type.Name()}", m.GetString("general.name"));
        Assert.Equal(fileType, m.GetUInt32("general.file_type"));
        Assert.Equal(GgufValueType.UInt32, m.TypeOf("general.file_type"));
        Assert.Equal(2048u, m.GetUInt32("llama.context_length"));
        Assert.Equal((uint)d, m.GetUInt32("llama.embedding_length"));
        Assert.Equal((uint)layers, m.GetUInt32("llama.block_count"));
        Assert.Equal((uint)ff, m.GetUInt32("llama.feed_forward_length"));
        Assert.Equal(6u, m.GetUInt32("llama.attention.head_count"));
        Assert.Equal(6u, m.GetUInt32("llama.attention.head_count_kv"));
        Assert.Equal(10000f, m.GetFloat32("llama.rope.freq_base"));
        Assert.Equal(GgufValueType.Float32, m.TypeOf("llama.rope.freq_base"));
        Assert.Equal(1e-5f, m.GetFloat32("llama.attention.layer_norm_rms_epsilon"));
        Assert.Equal(48u, m.GetUInt32("llama.rope.dimension_count"));
        Assert.Equal((uint)vocab, m.GetUInt32("llama.vocab_size"));
        Assert.Equal("llama", m.GetString("tokenizer.ggml.model"));
        Assert.Equal(vocab, m.GetStringArray("tokenizer.ggml.tokens").Length);
        Assert.Equal(vocab, m.GetFloat32Array("tokenizer.ggml.scores").Length);
        Assert.Equal(GgufValueType.Int32, m["tokenizer.ggml.token_type"].ElementType);
        Assert.Equal(1, m.GetIndex("tokenizer.ggml.bos_token_id", vocab));
        Assert.Equal(2, m.GetIndex("tokenizer.ggml.eos_token_id", vocab));
        Assert.Equal(0, m.GetIndex("tokenizer.ggml.unknown_token_id", vocab));
        Assert.True(m.GetBool("tokenizer.ggml.add_bos_token"));
        Assert.False(m.GetBool("tokenizer.ggml.add_eos_token"));
        Assert.False(m.Contains("general.alignment"));
        using (var spm = GgufFile.Open(Path.Combine(TestData.TokenizerDir, "ggml-vocab-llama-spm.gguf")))
        {
            Assert.Equal(spm.Metadata.GetStringArray("tokenizer.ggml.tokens"), m.GetStringArray("tokenizer.ggml.tokens"));
            Assert.Equal(spm.Metadata.GetFloat32Array("tokenizer.ggml.scores"), m.GetFloat32Array("tokenizer.ggml.scores"));
            Assert.Equal(spm.Metadata.GetInt32Array("tokenizer.ggml.token_type"), m.GetInt32Array("tokenizer.ggml.token_type"));
        }

        Assert.Equal(2 + 9 * layers, f.Tensors.Count);
        Assert.Null(f.FindTensor("output.weight")); // tied embeddings
        Check(f.GetTensor("token_embd.weight", d, vocab), type);
        Check(f.GetTensor("output_norm.weight", d), DataType.F32);
        for (int l = 0; l < layers; l++)
        {
            string p = $"blk.{l}.";
            Check(f.GetTensor(p + "attn_norm.weight", d), DataType.F32);
            Check(f.GetTensor(p + "attn_q.weight", d, d), type);
            Check(f.GetTensor(p + "attn_k.weight", d, d), type);
            Check(f.GetTensor(p + "attn_v.weight", d, d), type);
            Check(f.GetTensor(p + "attn_output.weight", d, d), type);
            Check(f.GetTensor(p + "ffn_norm.weight", d), DataType.F32);
            Check(f.GetTensor(p + "ffn_gate.weight", d, ff), type);
            Check(f.GetTensor(p + "ffn_up.weight", d, ff), type);
            Check(f.GetTensor(p + "ffn_down.weight", ff, d), type);
        }
        long last = f.Tensors.Max(t => t.Offset + t.ByteSize);
        Assert.True(f.FileLength - last < 32, "no data past the last tensor beyond its padding");

        // Norms are ones; projections have the intended spread (std 1/sqrt(fan_in), within sampling noise).
        Assert.All(Row(f, "blk.3.ffn_norm.weight", 0), x => Assert.Equal(1f, x));
        AssertStd(f, "blk.0.attn_q.weight", 1 / MathF.Sqrt(d), rows: 32);
        AssertStd(f, "blk.5.ffn_gate.weight", 1 / MathF.Sqrt(d), rows: 32);
        AssertStd(f, "blk.2.ffn_down.weight", 1 / MathF.Sqrt(ff) / MathF.Sqrt(2 * layers), rows: 32);
        AssertStd(f, "token_embd.weight", 1 / MathF.Sqrt(d), rows: 64);
    }

    private static void Check(GgufTensorInfo t, DataType type)
    {
        Assert.Equal(type, t.Type);
        Assert.Equal(type.RowBytes(t.RowLength) * t.Rows, t.ByteSize);
    }

    private static float[] Row(GgufFile f, string name, int row)
    {
        var t = f.GetTensor(name);
        var values = new float[t.RowLength];
        Dequantizer.DequantizeRow(t.Type, f.GetTensorBytes(t).Slice((int)(row * t.RowBytes), (int)t.RowBytes), values);
        return values;
    }

    private static void AssertStd(GgufFile f, string name, float expected, int rows)
    {
        double sum = 0, sq = 0;
        long n = 0;
        for (int r = 0; r < rows; r++)
            foreach (float x in Row(f, name, r))
            {
                Assert.True(float.IsFinite(x));
                sum += x;
                sq += (double)x * x;
                n++;
            }
        double mean = sum / n, std = Math.Sqrt(sq / n - mean * mean);
        Assert.InRange(std, expected * 0.85, expected * 1.15); // 4-bit quantization adds ~ a few % of noise
        Assert.InRange(mean, -0.1 * expected, 0.1 * expected);
    }

    [Fact]
    public void Same_seed_gives_identical_bytes_and_another_seed_differs()
    {
        string a = Path.Combine(_dir, "a.gguf"), b = Path.Combine(_dir, "b.gguf"), c = Path.Combine(_dir, "c.gguf");
        SyntheticModel.Create("tiny", DataType.Q4_0, a, seed: 7);
        SyntheticModel.Create("tiny", DataType.Q4_0, b, seed: 7);
        SyntheticModel.Create("tiny", DataType.Q4_0, c, seed: 8);
        var bytesA = File.ReadAllBytes(a);
        Assert.Equal(bytesA, File.ReadAllBytes(b));
        var bytesC = File.ReadAllBytes(c);
        Assert.Equal(bytesA.Length, bytesC.Length);
        Assert.NotEqual(bytesA, bytesC);
        Assert.False(File.Exists(a + ".tmp"));
    }

    [Fact]
    public void Shapes_table_has_the_documented_shapes()
    {
        var s1 = SyntheticModel.Shapes["1b"];
        Assert.Equal((2048, 16, 32, 8, 8192, 500000f), (s1.Dim, s1.Layers, s1.Heads, s1.KvHeads, s1.FeedForward, s1.RopeTheta));
        Assert.Equal(64, s1.HeadDim);
        Assert.Equal(512, s1.KvDim);
        var s8 = SyntheticModel.Shapes["8b"];
        Assert.Equal((4096, 32, 32, 8, 14336), (s8.Dim, s8.Layers, s8.Heads, s8.KvHeads, s8.FeedForward));
        Assert.Equal(3072, SyntheticModel.Shapes["3b"].Dim);
        Assert.Equal(15_191_712, SyntheticModel.Shapes["tiny"].ParameterCount);
    }

    [Theory]
    [InlineData(DataType.Q4_K, 14u)]
    [InlineData(DataType.Q5_K, 16u)]
    [InlineData(DataType.Q6_K, 18u)]
    public void K_quant_models_need_dims_of_whole_super_blocks(DataType type, uint fileType)
    {
        string tinyPath = Path.Combine(_dir, "tiny-k.gguf");
        var e = Assert.Throws<ArgumentException>(() => SyntheticModel.Create("tiny", type, tinyPath)); // dim 288
        Assert.Contains("multiples of 256", e.Message);
        Assert.False(File.Exists(tinyPath));

        // A small shape whose dims are whole super-blocks: every matrix in the type, readable back at the right spread.
        var small = new SyntheticShape("k256", Dim: 256, Layers: 2, Heads: 4, KvHeads: 2, FeedForward: 512, Vocab: 32000,
            Context: 512, RopeTheta: 10000f);
        string path = Path.Combine(_dir, "k256.gguf");
        SyntheticModel.Create(small, type, path);
        using var f = GgufFile.Open(path);
        Assert.Equal(fileType, f.Metadata.GetUInt32("general.file_type"));
        Check(f.GetTensor("token_embd.weight", 256, 32000), type);
        Check(f.GetTensor("blk.1.attn_k.weight", 256, 128), type);
        Check(f.GetTensor("blk.1.ffn_down.weight", 512, 256), type);
        AssertStd(f, "blk.0.attn_q.weight", 1 / MathF.Sqrt(256), rows: 32);
        AssertStd(f, "token_embd.weight", 1 / MathF.Sqrt(256), rows: 64);
    }

    [Fact]
    public void Bad_arguments_are_rejected()
    {
        string path = Path.Combine(_dir, "x.gguf");
        Assert.Throws<ArgumentException>(() => SyntheticModel.Create("70b", DataType.Q8_0, path));
        Assert.Throws<ArgumentException>(() => SyntheticModel.Create("tiny", DataType.I32, path));
        var odd = SyntheticModel.Shapes["tiny"] with { Dim = 300, Heads = 6, KvHeads = 6 };
        Assert.Throws<ArgumentException>(() => SyntheticModel.Create(odd, DataType.Q8_0, path));
        var wrongVocab = SyntheticModel.Shapes["tiny"] with { Vocab = 1000 };
        Assert.Throws<ArgumentException>(() => SyntheticModel.Create(wrongVocab, DataType.Q8_0, path));
        Assert.False(File.Exists(path));
    }
}
