using System.Text.RegularExpressions;
using Serving.Engine.Tokenizers;

namespace Serving.Engine.Tests.Tokenizers;

/// <summary>Byte-level BPE merging and the pre-tokenizers, on a hand-made vocabulary and against regexes.</summary>
public class BpeTokenizerTests
{
    private static readonly string[] s_tokens =
        ["h", "e", "l", "o", "Ġ", "w", "r", "d", "!", "he", "ll", "llo", "hello", "Ġw", "<|endoftext|>", "Ċ"];

    private static readonly string[] s_merges = ["h e", "l l", "ll o", "he llo", "Ġ w"];

    private static Tokenizer Build(string? pre = "gpt-2", string[]? merges = null, string[]? tokens = null) =>
        Tokenizer.Create(new TokenizerVocab
        {
            Model = "gpt2",
            Pre = pre,
            Tokens = tokens ?? s_tokens,
            Merges = merges ?? s_merges,
            EosId = Array.IndexOf(s_tokens, "<|endoftext|>"),
        });

    private static int Id(string token) => Array.IndexOf(s_tokens, token);

    [Fact]
    public void MergesApplyInRankOrder()
    {
        Tokenizer t = Build();
        Assert.Equal("gpt2", t.Model);
        // "hello" → h e l l o → he l l o → he ll o → he llo → hello; " world" → Ġw o r l d.
        int[] ids = t.Encode("hello world", addBos: false);
        Assert.Equal([Id("hello"), Id("Ġw"), Id("o"), Id("r"), Id("l"), Id("d")], ids);
        Assert.Equal("hello world", t.Decode(ids));
    }

    [Theory]
    [InlineData(new[] { "e l", "h e" }, new[] { "h", "el" })]
    [InlineData(new[] { "h e", "e l" }, new[] { "he", "l" })]
    public void LowerRankWinsWhereMergesOverlap(string[] merges, string[] expected)
    {
        string[] tokens = [.. s_tokens, "el"];
        Tokenizer t = Build(merges: merges, tokens: tokens);
        Assert.Equal(expected.Select(e => Array.IndexOf(tokens, e)), t.Encode("hel", addBos: false));
    }

    [Fact]
    public void LlamaBpeTakesWholeWordTokensWithoutMerging()
    {
        // llama3-style pre-tokenizers set ignore_merges: a word that is a token is used as is.
        var vocab = new TokenizerVocab { Model = "gpt2", Pre = "llama-bpe", Tokens = s_tokens, Merges = [], BosId = 0 };
        Tokenizer t = Tokenizer.Create(vocab);
        Assert.True(t.AddBos);
        Assert.Equal([0, Id("hello")], t.Encode("hello", addBos: t.AddBos));
        Assert.Equal([Id("h"), Id("e"), Id("l"), Id("l"), Id("o")], Build(merges: []).Encode("hello", addBos: false));
    }

    [Fact]
    public void NewlineIsSpelledAsByteCharacter()
    {
        Tokenizer t = Build();
        Assert.Equal([Id("h"), Id("Ċ")], t.Encode("h\n", addBos: false));
        Assert.Equal("h\n", t.Decode([Id("h"), Id("Ċ")]));
    }

    [Fact]
    public void SymbolsWithoutTokensKeepOnlyAsciiSingleByteTokens()
    {
        // llama.cpp drops what the vocabulary cannot spell rather than failing: 'x' has no token.
        Assert.Equal([Id("h"), Id("!")], Build().Encode("hx!", addBos: false));
    }

    [Fact]
    public void EndOfTextIsControlAndEndsGeneration()
    {
        Tokenizer t = Build();
        int eot = Id("<|endoftext|>");
        Assert.True(t.IsEndOfGeneration(eot));
        Assert.Equal(eot, t.EotId);
        Assert.Equal("", t.Decode([eot]));
        Assert.Equal("<|endoftext|>", t.Decode([eot], renderSpecial: true));
        Assert.DoesNotContain(eot, t.Encode("<|endoftext|>", addBos: false));
        Assert.Equal([eot], t.Encode("<|endoftext|>", addBos: false, parseSpecial: true));
    }

    [Fact]
    public void NoBosByDefaultAndAskingForOneFails()
    {
        Tokenizer t = Build();
        Assert.Equal(-1, t.BosId);
        Assert.False(t.AddBos);
        Assert.Throws<InvalidOperationException>(() => t.Encode("h", addBos: true));
    }

    [Fact]
    public void Gpt2VocabularyLoadsFromGguf()
    {
        Tokenizer t = TokenizerVectors.Load(TokenizerVectors.Gpt2);
        Assert.Equal(50257, t.VocabSize);
        Assert.Equal((50256, 50256), (t.BosId, t.EosId));
        Assert.True(t.IsEndOfGeneration(50256));
        Assert.False(t.AddBos);
        Assert.Equal(" world", t.TokenToPiece(995));
    }

    // ---- pre-tokenizers ----

    public static IEnumerable<object[]> SplitSamples()
    {
        string[] extra =
        [
            "a  b", "  ", "a   ", "a\n\n b", "'s's 'LL 'Ve", "x '  y", "3333333", "Hello\n\n  world", "\r\n\r\n x",
            "don't DON'T", "tab\there", "a\u00A0b\u3000c", "!!\n\nx", " ?!", "12abc34", "é́ü", "a\u0085b",
        ];
        // Missing vector data throws here, which fails the theory naming the expected folder.
        var all = extra.Concat(TokenizerVectors.Cases(TokenizerVectors.Gpt2).Select(c => c.Text));
        return all.Distinct().Select(s => new object[] { TokenizerVectors.Show(s), s });
    }

    [Theory]
    [MemberData(nameof(SplitSamples))]
    public void Gpt2ScannerAgreesWithTheGpt2Regex(string shown, string text)
    {
        var expected = Regex.Matches(text, BpePreTokenizer.Gpt2Pattern).Select(m => m.Value).ToList();
        Assert.True(expected.SequenceEqual(BpePreTokenizer.ForName("gpt-2").Split(text)), shown);
    }

    [Theory]
    [MemberData(nameof(SplitSamples))]
    public void Llama3ScannerAgreesWithTheLlama3Regex(string shown, string text)
    {
        var expected = Regex.Matches(text, BpePreTokenizer.Llama3Pattern).Select(m => m.Value).ToList();
        Assert.True(expected.SequenceEqual(BpePreTokenizer.ForName("llama-bpe").Split(text)), shown);
    }

    [Fact]
    public void Llama3SplitsDigitsInThreesAndKeepsNewlinesTogether()
    {
        var pre = BpePreTokenizer.ForName("llama-bpe");
        Assert.Equal(["333", "333", "3"], pre.Split("3333333"));
        Assert.Equal(["Hello", "\n\n", " ", " world"], pre.Split("Hello\n\n  world"));
        Assert.Equal(["I", "'M", " here"], pre.Split("I'M here"));
        Assert.True(pre.IgnoreMerges);
        Assert.True(pre.AddBos);
    }

    [Fact]
    public void DefaultPreTokenizerRunsLlamaCppsFourStages()
    {
        // [\p{P}$+<=>^~|]+ first, then GPT-2, then \p{N}+, then [0-9]{3}: each stage splits the previous pieces.
        var pre = BpePreTokenizer.ForName("default");
        Assert.Equal(["a", " ", "123", "456", "7"], pre.Split("a 1234567"));
        Assert.Equal(["a", ",", " b", "!!"], pre.Split("a, b!!"));
        Assert.Equal("default", BpePreTokenizer.ForName(null).Name);
    }

    [Fact]
    public void UnknownPreTokenizerListsTheSupportedOnes()
    {
        var e = Assert.Throws<TokenizerException>(() => Build(pre: "no-such-pre"));
        Assert.Equal(TokenizerVocab.Keys.Pre, e.Key);
        Assert.Contains("no-such-pre", e.Message);
        foreach (string name in new[] { "default", "gpt-2", "llama-bpe" })
            Assert.Contains(name, e.Message);
    }

    [Fact]
    public void MissingMergesAreAnError()
    {
        var e = Assert.Throws<TokenizerException>(() => Tokenizer.Create(new TokenizerVocab { Model = "gpt2", Tokens = s_tokens }));
        Assert.Equal(TokenizerVocab.Keys.Merges, e.Key);
    }
}
