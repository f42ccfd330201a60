using Serving.Engine.Tokenizers;

namespace Serving.Engine.Tests.Tokenizers;

/// <summary>Streaming output releases only whole UTF-8 characters.</summary>
public class StreamingDecoderTests
{
    private static Tokenizer Spm => TokenizerVectors.Load(TokenizerVectors.Spm);

    // In llama-spm, byte token <0xXX> has id 3 + XX.
    private static int Byte(int b) => 3 + b;

    [Fact]
    public void CharacterSplitAcrossByteTokensComesOutWhole()
    {
        var d = new StreamingDecoder(Spm);
        Assert.Equal("", d.Push(Byte(0xE2)));
        Assert.Equal(1, d.PendingByteCount);
        Assert.Equal("", d.Push(Byte(0x96)));
        Assert.Equal("▁", d.Push(Byte(0x81)));
        Assert.Equal(0, d.PendingByteCount);
    }

    [Fact]
    public void FourByteEmojiThenText()
    {
        Tokenizer t = Spm;
        int[] ids = t.Encode("🦙 llama", addBos: false); // the llama emoji has no token: four byte tokens
        var d = new StreamingDecoder(t);
        var outputs = ids.Select(d.Push).ToList();
        Assert.All(outputs, o => Assert.DoesNotContain('\uFFFD', o));
        Assert.Equal(" 🦙 llama", string.Concat(outputs) + d.Flush());
        // Nothing came out until the fourth byte of the emoji.
        int firstText = outputs.FindIndex(o => o.Contains("🦙", StringComparison.Ordinal));
        Assert.True(firstText >= 3, $"emoji appeared after token {firstText}");
    }

    [Fact]
    public void InvalidBytesBecomeReplacementCharactersWithoutStalling()
    {
        var d = new StreamingDecoder(Spm);
        // A stray continuation byte can never start a character: it is released at once.
        Assert.Equal("\uFFFD", d.Push(Byte(0x80)));
        // A lead byte followed by ASCII: the lead byte is invalid, the ASCII comes through.
        Assert.Equal("", d.Push(Byte(0xE2)));
        Assert.Equal("\uFFFDA", d.Push(Byte(0x41)));
    }

    [Fact]
    public void FlushReleasesAnIncompleteTailAndResets()
    {
        var d = new StreamingDecoder(Spm);
        Assert.Equal("", d.Push(Byte(0xF0)));
        Assert.Equal("", d.Push(Byte(0x9F)));
        Assert.Equal("\uFFFD", d.Flush());
        Assert.Equal(0, d.PendingByteCount);
        Assert.Equal("", d.Flush());
    }

    [Fact]
    public void ControlTokensAreHiddenUnlessRequested()
    {
        Assert.Equal("", new StreamingDecoder(Spm).Push(2));
        Assert.Equal("</s>", new StreamingDecoder(Spm, renderSpecial: true).Push(2));
    }

    [Fact]
    public void ByteLevelBpeMultiByteCharacters()
    {
        Tokenizer t = TokenizerVectors.Load(TokenizerVectors.Gpt2);
        const string text = "нещо на Български 🚀 ✅";
        var d = new StreamingDecoder(t);
        var outputs = t.Encode(text, addBos: false).Select(d.Push).ToList();
        Assert.All(outputs, o => Assert.DoesNotContain('\uFFFD', o));
        Assert.Equal(text, string.Concat(outputs) + d.Flush());
    }
}
