using Serving.Engine.Tokenizers;

namespace Serving.Engine.Tests.Tokenizers;

/// <summary>The SentencePiece merge rules on a hand-made vocabulary whose merges are easy to follow.</summary>
public class SpmTokenizerTests
{
    // ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then the pieces below.
    private static readonly (string Text, float Score, TokenType Type)[] s_pieces =
    [
        ("▁", -10, TokenType.Normal), ("a", -10, TokenType.Normal), ("b", -10, TokenType.Normal),
        ("c", -10, TokenType.Normal), ("ab", -2, TokenType.Normal), ("bc", -1, TokenType.Normal),
        ("▁a", -3, TokenType.Normal), ("aa", -1, TokenType.Normal), ("<tool>", 0, TokenType.UserDefined),
    ];

    private static Tokenizer Build(bool? addSpacePrefix = null)
    {
        var tokens = new List<string> { "<unk>", "<s>", "</s>" };
        var types = new List<int> { (int)TokenType.Unknown, (int)TokenType.Control, (int)TokenType.Control };
        var scores = new List<float> { 0, 0, 0 };
        for (int b = 0; b < 256; b++)
        {
            tokens.Add($"<0x{b:X2}>");
            types.Add((int)TokenType.Byte);
            scores.Add(0);
        }
        foreach (var (text, score, type) in s_pieces)
        {
            tokens.Add(text);
            types.Add((int)type);
            scores.Add(score);
        }
        return Tokenizer.Create(new TokenizerVocab
        {
            Model = "llama",
            Tokens = tokens.ToArray(),
            Scores = scores.ToArray(),
            TokenTypes = types.ToArray(),
            AddSpacePrefix = addSpacePrefix,
        });
    }

    private static int Id(string piece) => 259 + Array.FindIndex(s_pieces, p => p.Text == piece);

    private static int Byte(int b) => 3 + b;

    [Fact]
    public void DefaultsFollowLlamaCpp()
    {
        Tokenizer t = Build();
        Assert.Equal("llama", t.Model);
        Assert.Equal(259 + s_pieces.Length, t.VocabSize);
        Assert.Equal((1, 2, 0), (t.BosId, t.EosId, t.UnknownId));
        Assert.True(t.AddBos);
        Assert.True(t.IsEndOfGeneration(2));
        Assert.False(t.IsEndOfGeneration(1));
    }

    [Fact]
    public void HighestScoringPairMergesFirst()
    {
        // "▁abc": pairs ▁a (-3), ab (-2), bc (-1). bc wins, which makes ab stale; then ▁a.
        Assert.Equal([Id("▁a"), Id("bc")], Build().Encode("abc", addBos: false));
    }

    [Fact]
    public void EqualScoresMergeLeftmostFirst()
    {
        Assert.Equal([Id("▁"), Id("aa"), Id("a")], Build().Encode("aaa", addBos: false));
    }

    [Fact]
    public void SpacesBecomeEscapedAndPrefixIsConfigurable()
    {
        Assert.Equal([Id("▁a"), Id("▁a")], Build().Encode("a a", addBos: false));
        Assert.Equal([Id("ab")], Build(addSpacePrefix: false).Encode("ab", addBos: false));
        Assert.Equal("ab", Build(addSpacePrefix: false).Decode([Id("ab")]));
    }

    [Fact]
    public void UnknownCharactersFallBackToUtf8Bytes()
    {
        Tokenizer t = Build();
        int[] ids = t.Encode("é€", addBos: false); // C3 A9, E2 82 AC
        Assert.Equal([Id("▁"), Byte(0xC3), Byte(0xA9), Byte(0xE2), Byte(0x82), Byte(0xAC)], ids);
        Assert.Equal("é€", t.Decode(ids));
    }

    [Fact]
    public void BosIsAddedOnRequestAndHiddenWhenDecoding()
    {
        Tokenizer t = Build();
        int[] ids = t.Encode("ab", addBos: true);
        Assert.Equal([1, Id("▁"), Id("ab")], ids); // ab (-2) beats ▁a (-3)
        // As llama.cpp's detokenize without remove_special: the first token consumes the leading-space strip.
        Assert.Equal(" ab", t.Decode(ids));
        Assert.Equal("<s> ab", t.Decode(ids, renderSpecial: true));
        Assert.Equal("ab", t.Decode(ids.AsSpan(1)));
    }

    [Fact]
    public void ControlTextIsPlainUnlessParseSpecial()
    {
        Tokenizer t = Build();
        int[] plain = t.Encode("</s>", addBos: false);
        Assert.DoesNotContain(2, plain);
        Assert.Equal("</s>", t.Decode(plain));

        // Parsed: the token itself, and the text after it gets the space prefix again.
        Assert.Equal([Id("▁a"), 2, Id("▁a")], t.Encode("a</s>a", addBos: false, parseSpecial: true));
    }

    [Fact]
    public void UserDefinedTokensAreAlwaysMatched()
    {
        Tokenizer t = Build();
        int[] ids = t.Encode("a<tool>a", addBos: false);
        Assert.Equal([Id("▁a"), Id("<tool>"), Id("▁a")], ids);
        Assert.Equal("<tool>", t.TokenToPiece(Id("<tool>")));
    }

    [Fact]
    public void EmptyTextGivesNoTokens()
    {
        Assert.Empty(Build().Encode("", addBos: false));
        Assert.Equal([1], Build().Encode("", addBos: true));
        Assert.Equal("", Build().Decode([]));
    }

    [Fact]
    public void LoneSurrogateIsEncodedAsReplacementCharacter()
    {
        Tokenizer t = Build();
        Assert.Equal(t.Encode("a\uFFFD", false), t.Encode("a\uD800", false));
    }

    [Fact]
    public void OutOfRangeIdsAreRejected()
    {
        Tokenizer t = Build();
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Decode([t.VocabSize]));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.TokenToPiece(-1));
    }

    [Fact]
    public void LlamaSpmVocabularyLoadsFromGguf()
    {
        Tokenizer t = TokenizerVectors.Load(TokenizerVectors.Spm);
        Assert.Equal(32000, t.VocabSize);
        Assert.Equal((1, 2, 0), (t.BosId, t.EosId, t.UnknownId));
        Assert.True(t.AddBos);
        Assert.Equal([1, 15043, 3186], t.Encode("Hello world", addBos: true));
        Assert.Equal(" Hello", t.TokenToPiece(15043));
        Assert.Equal("▁Hello", t.GetTokenText(15043));
    }
}
