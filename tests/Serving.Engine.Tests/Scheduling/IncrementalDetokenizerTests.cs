using Serving.Engine.Scheduling;

namespace Serving.Engine.Tests.Scheduling;

public class IncrementalDetokenizerTests
{
    /// <summary>
    /// Byte tokens 0..255 decoded as UTF-8 (incomplete characters → U+FFFD), plus SentencePiece-like behaviour:
    /// token 300 is "▁hi" and a span starting with it loses the leading space.
    /// </summary>
    private sealed class ByteDecoder : ITokenDecoder
    {
        public string Decode(ReadOnlySpan<int> tokens)
        {
            var bytes = new List<byte>();
            for (int i = 0; i < tokens.Length; i++)
            {
                if (tokens[i] == 300) bytes.AddRange(i == 0 ? "hi"u8.ToArray() : " hi"u8.ToArray());
                else bytes.Add((byte)tokens[i]);
            }
            return System.Text.Encoding.UTF8.GetString([.. bytes]);
        }

        public bool IsEndOfGeneration(int token) => false;
    }

    [Fact]
    public void Multi_byte_characters_are_emitted_whole_and_spaces_kept()
    {
        int[] all = [(int)'x', 300, 0xC3, 0xA9, 300, 0xE2, 0x82, 0xAC];
        var detok = new IncrementalDetokenizer(new ByteDecoder(), promptLength: 1);
        var pieces = new List<string>();
        for (int n = 2; n <= all.Length; n++) pieces.Add(detok.Next(all.AsSpan(0, n)));

        Assert.Equal([" hi", "", "é", " hi", "", "", "€"], pieces);
        Assert.Equal(string.Empty, detok.Flush(all));
    }

    [Fact]
    public void Flush_releases_an_incomplete_character_as_replacement()
    {
        int[] all = [(int)'a', 0xE2, 0x82];
        var detok = new IncrementalDetokenizer(new ByteDecoder(), promptLength: 1);
        Assert.Equal("", detok.Next(all.AsSpan(0, 2)));
        Assert.Equal("", detok.Next(all));
        Assert.Equal("\uFFFD", detok.Flush(all));
    }
}
