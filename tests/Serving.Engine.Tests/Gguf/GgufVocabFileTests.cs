using Serving.Engine.Gguf;

namespace Serving.Engine.Tests.Gguf;

/// <summary>The real vocabulary files from llama.cpp (tests/data/tokenizer) open through the memory map.</summary>
public class GgufVocabFileTests
{
    [Fact]
    public void Llama_spm_vocab_parses()
    {
        using var f = GgufFile.Open(Path.Combine(TestData.TokenizerDir, "ggml-vocab-llama-spm.gguf"));
        var m = f.Metadata;
        Assert.Equal(3, f.Version);
        Assert.Empty(f.Tensors);
        Assert.Equal("llama", m.GetString("tokenizer.ggml.model"));
        var tokens = m.GetStringArray("tokenizer.ggml.tokens");
        Assert.Equal(32000, tokens.Length);
        Assert.Equal("<unk>", tokens[0]);
        Assert.Equal("<s>", tokens[1]);
        Assert.Equal("<0x0A>", tokens[13]);
        Assert.Equal(32000, m.GetFloat32Array("tokenizer.ggml.scores").Length);
        Assert.Equal(32000, m.GetInt32Array("tokenizer.ggml.token_type").Length);
        Assert.Equal(1, m.GetIndex("tokenizer.ggml.bos_token_id", tokens.Length));
        Assert.True(m.GetBool("tokenizer.ggml.add_bos_token"));
        Assert.Equal(1e-5f, m.GetFloat32("llama.attention.layer_norm_rms_epsilon"), 1e-9f);
    }

    [Fact]
    public void Gpt2_vocab_parses()
    {
        using var f = GgufFile.Open(Path.Combine(TestData.TokenizerDir, "ggml-vocab-gpt-2.gguf"));
        var m = f.Metadata;
        Assert.Equal("gpt2", m.GetString("tokenizer.ggml.model"));
        Assert.Equal("gpt-2", m.GetString("tokenizer.ggml.pre"));
        Assert.Equal(50257, m.GetArrayLength("tokenizer.ggml.tokens"));
        Assert.Equal(50000, m.GetStringArray("tokenizer.ggml.merges").Length);
        Assert.Equal("Ġ t", m.GetStringArray("tokenizer.ggml.merges")[0]);
        Assert.Equal(50256u, m.GetUInt32("tokenizer.ggml.eos_token_id"));
    }

    [Fact]
    public void Every_vocab_file_parses_and_truncations_fail_cleanly()
    {
        var files = Directory.GetFiles(TestData.TokenizerDir, "*.gguf");
        Assert.NotEmpty(files);
        foreach (var path in files)
        {
            var bytes = File.ReadAllBytes(path);
            using (var f = GgufFile.Parse(bytes))
                Assert.True(f.Metadata.Count > 0, path);
            // Cutting the file anywhere in the metadata gives a typed error, never a crash.
            foreach (int cut in new[] { 5, 23, 24, 100, bytes.Length / 2, bytes.Length - 1 })
                Assert.Throws<GgufFormatException>(() => GgufFile.Parse(bytes[..cut]));
        }
    }
}
