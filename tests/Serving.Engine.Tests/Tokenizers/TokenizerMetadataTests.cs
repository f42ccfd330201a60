using Serving.Engine.Gguf;
using Serving.Engine.Tokenizers;

namespace Serving.Engine.Tests.Tokenizers;

/// <summary>Bad tokenizer metadata in a GGUF file gives a typed error naming the key.</summary>
public class TokenizerMetadataTests
{
    private static readonly string[] s_tokens = ["<unk>", "<s>", "</s>", "▁a", "<0x41>"];

    /// <summary>A valid llama vocabulary; <paramref name="edit"/> may replace or drop keys (null value = drop).</summary>
    private static Tokenizer Load(Action<Dictionary<string, GgufValue?>>? edit = null)
    {
        var kv = new Dictionary<string, GgufValue?>
        {
            [TokenizerVocab.Keys.Model] = GgufValue.Scalar(GgufValueType.String, "llama"),
            [TokenizerVocab.Keys.Tokens] = GgufValue.Array(GgufValueType.String, s_tokens),
            [TokenizerVocab.Keys.Scores] = GgufValue.Array(GgufValueType.Float32, new float[] { 0, 0, 0, -1, 0 }),
            [TokenizerVocab.Keys.TokenTypes] = GgufValue.Array(GgufValueType.Int32, new[] { 2, 3, 3, 1, 6 }),
            [TokenizerVocab.Keys.BosId] = GgufValue.Scalar(GgufValueType.UInt32, 1u),
            [TokenizerVocab.Keys.EosId] = GgufValue.Scalar(GgufValueType.UInt32, 2u),
        };
        edit?.Invoke(kv);
        var writer = new GgufWriter();
        foreach (var (key, value) in kv)
        {
            if (value is not null)
                writer.Add(key, value);
        }
        using var stream = new MemoryStream();
        writer.WriteTo(stream);
        using GgufFile file = GgufFile.Parse(stream.ToArray());
        return Tokenizer.FromGguf(file);
    }

    private static void Set(Dictionary<string, GgufValue?> kv, string key, GgufValue? value) => kv[key] = value;

    [Fact]
    public void ValidMetadataLoads()
    {
        Tokenizer t = Load();
        Assert.Equal(5, t.VocabSize);
        Assert.Equal([1, 3], t.Encode("a", addBos: true));
        Assert.Equal("A", t.TokenToPiece(4));
    }

    [Fact]
    public void ScoresOfOtherLengthNameTheKey()
    {
        var e = Assert.Throws<TokenizerException>(() => Load(kv =>
            Set(kv, TokenizerVocab.Keys.Scores, GgufValue.Array(GgufValueType.Float32, new float[] { 0, 0, 0, 0 }))));
        Assert.Equal(TokenizerVocab.Keys.Scores, e.Key);
        Assert.Contains("4", e.Message);
        Assert.Contains("5", e.Message);
    }

    [Fact]
    public void TokenTypesOfOtherLengthNameTheKey()
    {
        var e = Assert.Throws<TokenizerException>(() => Load(kv =>
            Set(kv, TokenizerVocab.Keys.TokenTypes, GgufValue.Array(GgufValueType.Int32, new[] { 1, 1, 1, 1, 1, 1 }))));
        Assert.Equal(TokenizerVocab.Keys.TokenTypes, e.Key);
    }

    [Fact]
    public void ScoresOfTheWrongTypeAreAFormatError()
    {
        var e = Assert.Throws<GgufFormatException>(() => Load(kv =>
            Set(kv, TokenizerVocab.Keys.Scores, GgufValue.Array(GgufValueType.String, new[] { "a", "b", "c", "d", "e" }))));
        Assert.Equal(TokenizerVocab.Keys.Scores, e.Field);
        Assert.True(e.Offset > 0);
    }

    [Fact]
    public void IntegerScoresAreAccepted()
    {
        Tokenizer t = Load(kv => Set(kv, TokenizerVocab.Keys.Scores, GgufValue.Array(GgufValueType.Int32, new[] { 0, 0, 0, -1, 0 })));
        Assert.Equal([3], t.Encode("a", addBos: false));
    }

    [Theory]
    [InlineData(TokenizerVocab.Keys.BosId)]
    [InlineData(TokenizerVocab.Keys.EosId)]
    [InlineData(TokenizerVocab.Keys.UnkId)]
    [InlineData(TokenizerVocab.Keys.EotId)]
    public void SpecialIdOutsideTheVocabularyNamesTheKey(string key)
    {
        var e = Assert.Throws<GgufFormatException>(() => Load(kv => Set(kv, key, GgufValue.Scalar(GgufValueType.UInt32, 5u))));
        Assert.Equal(key, e.Field);
        Assert.Contains("5", e.Detail);
    }

    [Fact]
    public void MissingTokensNameTheKey()
    {
        var e = Assert.Throws<GgufFormatException>(() => Load(kv => Set(kv, TokenizerVocab.Keys.Tokens, null)));
        Assert.Equal(TokenizerVocab.Keys.Tokens, e.Field);
    }

    [Fact]
    public void MissingModelNamesTheKey()
    {
        var e = Assert.Throws<GgufFormatException>(() => Load(kv => Set(kv, TokenizerVocab.Keys.Model, null)));
        Assert.Equal(TokenizerVocab.Keys.Model, e.Field);
    }

    [Fact]
    public void UnsupportedModelListsTheSupportedOnes()
    {
        var e = Assert.Throws<TokenizerException>(() => Load(kv => Set(kv, TokenizerVocab.Keys.Model, GgufValue.Scalar(GgufValueType.String, "bert"))));
        Assert.Equal(TokenizerVocab.Keys.Model, e.Key);
        Assert.Contains("bert", e.Message);
        Assert.Contains("gpt2", e.Message);
    }

    [Fact]
    public void DuplicateTokensAreAnError()
    {
        var e = Assert.Throws<TokenizerException>(() => Load(kv =>
            Set(kv, TokenizerVocab.Keys.Tokens, GgufValue.Array(GgufValueType.String, new[] { "<unk>", "<s>", "</s>", "▁a", "▁a" }))));
        Assert.Equal(TokenizerVocab.Keys.Tokens, e.Key);
        Assert.Contains("3 and 4", e.Message);
    }

    [Fact]
    public void ByteTokenWithMalformedTextIsAnError()
    {
        var e = Assert.Throws<TokenizerException>(() => Load(kv =>
            Set(kv, TokenizerVocab.Keys.Tokens, GgufValue.Array(GgufValueType.String, new[] { "<unk>", "<s>", "</s>", "▁a", "<0xZZ>" }))));
        Assert.Equal(TokenizerVocab.Keys.TokenTypes, e.Key);
        Assert.Contains("<0xZZ>", e.Message);
    }

    [Fact]
    public void AddBosWithoutBosIsAnError()
    {
        var e = Assert.Throws<TokenizerException>(() => Tokenizer.Create(new TokenizerVocab
        {
            Model = "gpt2",
            Tokens = ["a", "b"],
            Merges = ["a b"],
            AddBos = true,
        }));
        Assert.Equal(TokenizerVocab.Keys.AddBos, e.Key);
    }

    [Fact]
    public void HandMadeVocabularyIsValidatedToo()
    {
        var e = Assert.Throws<TokenizerException>(() => Tokenizer.Create(new TokenizerVocab
        {
            Model = "llama",
            Tokens = ["a", "b"],
            BosId = 2,
        }));
        Assert.Equal(TokenizerVocab.Keys.BosId, e.Key);
        Assert.Throws<TokenizerException>(() => Tokenizer.Create(new TokenizerVocab { Model = "llama", Tokens = [] }));
    }

    [Fact]
    public void NonFiniteScoreIsAnError()
    {
        var e = Assert.Throws<TokenizerException>(() => Tokenizer.Create(new TokenizerVocab
        {
            Model = "llama",
            Tokens = ["<unk>", "<s>", "</s>", "▁a", "▁b"],
            Scores = [0, 0, 0, -1, float.NaN],
        }));
        Assert.Equal(TokenizerVocab.Keys.Scores, e.Key);
        Assert.Contains("token 4", e.Message);
    }

    [Fact]
    public void MaxTokenLength_IsTheLongestTextPlainTextCanProduce_AndBoundsTheTokenCount()
    {
        var tokenizer = Tokenizer.Create(new TokenizerVocab
        {
            Model = "llama",
            Tokens = ["<unk>", "<s>", "</s>", "▁a", "▁aaaa", "<|a-long-control-token|>"],
            TokenTypes = [2, 3, 3, 1, 1, 3], // unknown, control ×2, normal ×2, control
        });
        Assert.Equal(5, tokenizer.MaxTokenLength); // "▁aaaa"; control tokens are not matched in plain text
        string text = string.Concat(Enumerable.Repeat("aaaa ", 50));
        int tokens = tokenizer.Encode(text, addBos: false).Length;
        Assert.True(tokens >= (text.Length + tokenizer.MaxTokenLength - 1) / tokenizer.MaxTokenLength, $"{tokens} tokens for {text.Length} chars");
    }
}
