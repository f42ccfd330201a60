using Serving.Engine.Tokenizers;

namespace Serving.Engine.Tests.Tokenizers;

/// <summary>
/// Every string of llama.cpp's vocab test files must encode to exactly the ids llama.cpp's test-tokenizer-0
/// expects (common_tokenize with add_special = false, parse_special = false), and decode back.
/// </summary>
public class TokenizerVectorTests
{
    public static IEnumerable<object[]> SpmRows() => TokenizerVectors.Rows(TokenizerVectors.Spm);

    public static IEnumerable<object[]> Gpt2Rows() => TokenizerVectors.Rows(TokenizerVectors.Gpt2);

    // Decoding a GPT-2 vocabulary cleans spaces before punctuation and contractions (llama.cpp's
    // clean_up_tokenization_spaces), so those strings do not come back verbatim; CleanSpacesOnDecode covers them.
    public static IEnumerable<object[]> Gpt2RoundTripRows() =>
        TokenizerVectors.Rows(TokenizerVectors.Gpt2, s => !ChangedByCleanSpaces(s));

    [Theory]
    [MemberData(nameof(SpmRows))]
    [MemberData(nameof(Gpt2Rows))]
    public void EncodesLikeLlamaCpp(string vocab, int index, string shown)
    {
        var (text, expected) = Case(vocab, index, shown);
        int[] actual = TokenizerVectors.Load(vocab).Encode(text, addBos: false);
        Assert.True(expected.SequenceEqual(actual),
            $"{vocab} {shown}: expected [{string.Join(' ', expected)}] got [{string.Join(' ', actual)}]");
    }

    [Theory]
    [MemberData(nameof(SpmRows))]
    [MemberData(nameof(Gpt2RoundTripRows))]
    public void DecodeOfExpectedIdsGivesTheText(string vocab, int index, string shown)
    {
        var (text, expected) = Case(vocab, index, shown);
        Assert.True(text == TokenizerVectors.Load(vocab).Decode(expected), $"{vocab} {shown}");
    }

    [Theory]
    [MemberData(nameof(SpmRows))]
    [MemberData(nameof(Gpt2Rows))]
    public void StreamingDecodeMatchesDecodeWithoutCleanup(string vocab, int index, string shown)
    {
        var (_, expected) = Case(vocab, index, shown);
        Tokenizer tok = TokenizerVectors.Load(vocab);
        var stream = new StreamingDecoder(tok);
        string streamed = string.Concat(expected.Select(stream.Push)) + stream.Flush();
        // The stream neither strips the SentencePiece leading space nor cleans spaces: it is the raw pieces.
        var bytes = expected.SelectMany(id => tok.TokenToBytes(id).ToArray()).ToArray();
        Assert.True(System.Text.Encoding.UTF8.GetString(bytes) == streamed, $"{vocab} {shown}");
    }

    [Fact]
    public void CleanSpacesOnDecode()
    {
        Tokenizer gpt2 = TokenizerVectors.Load(TokenizerVectors.Gpt2);
        // " 's", " 'm", " 're", " 've" lose the space; " 'll", " 't", " 'd" keep it (llama.cpp's rules).
        Assert.Equal("Hello, world! I'm here've we 'll", gpt2.Decode(gpt2.Encode("Hello , world ! I 'm here 've we 'll", false)));
        Assert.Equal("a'b", gpt2.Decode(gpt2.Encode("a ' b", false)));
        // SentencePiece vocabularies keep spaces as they are.
        Tokenizer spm = TokenizerVectors.Load(TokenizerVectors.Spm);
        Assert.Equal("Hello , world !", spm.Decode(spm.Encode("Hello , world !", false)));
    }

    private static bool ChangedByCleanSpaces(string s) =>
        new[] { " ?", " !", " .", " ,", " ' ", " 's", " 'm", " 're", " 've" }.Any(p => s.Contains(p, StringComparison.Ordinal));

    private static (string Text, int[] Ids) Case(string vocab, int index, string shown)
    {
        Assert.True(index >= 0, $"tokenizer test data could not be read: {shown}");
        return TokenizerVectors.Cases(vocab)[index];
    }
}
