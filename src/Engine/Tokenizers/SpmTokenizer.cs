using System.Text;

namespace Serving.Engine.Tokenizers;

/// <summary>
/// SentencePiece-style tokenizer (<c>tokenizer.ggml.model = llama</c>), as llama.cpp's llm_tokenizer_spm:
/// spaces become '▁' (U+2581), a '▁' is prepended at the start of the input and after each special token, then
/// adjacent symbols are merged greedily — always the pair whose merged text is the vocabulary entry with the
/// highest score, leftmost first on ties — and characters no token covers fall back to &lt;0xXX&gt; byte tokens.
/// </summary>
internal sealed class SpmTokenizer : Tokenizer
{
    private readonly float[] _scores;       // [V]
    private readonly int[] _byteTokens;     // [256] id of <0xXX> (or of the 1-char ASCII token), -1 when missing

    internal SpmTokenizer(TokenizerVocab vocab)
        : base(vocab, new Defaults(Bos: 1, Eos: 2, Unk: 0, AddBos: true, AddSpacePrefix: true, CleanSpaces: false))
    {
        _scores = vocab.Scores ?? new float[vocab.Tokens.Length];
        _addSpacePrefix = vocab.AddSpacePrefix ?? true;
        _byteTokens = new int[256];
        for (int b = 0; b < 256; b++)
        {
            int id = Lookup($"<0x{b:X2}>");
            if (id < 0 && b < 0x80)
                id = Lookup(((char)b).ToString());
            _byteTokens[b] = id;
        }
    }

    private readonly bool _addSpacePrefix;

    /// <inheritdoc/>
    public override string Model => "llama";

    private protected override byte[] DecodeNormal(string text) =>
        Encoding.UTF8.GetBytes(text.Replace(Codepoints.EscapedSpace, ' '));

    private protected override void EncodeText(ReadOnlySpan<char> fragment, bool afterSpecial, List<int> output)
    {
        // Escape: "▁" prefix when at the start or after a special token, every ' ' → '▁'.
        bool prefix = _addSpacePrefix && afterSpecial;
        int length = fragment.Length + (prefix ? 1 : 0);
        if (length == 0)
            return;
        char[] text = new char[length];
        int o = 0;
        if (prefix)
            text[o++] = Codepoints.EscapedSpace;
        foreach (char c in fragment)
            text[o++] = c == ' ' ? Codepoints.EscapedSpace : c;

        // One symbol per code point: a doubly linked list over char ranges of `text`. Merging moves the right
        // symbol's chars into the left one (they are adjacent) and sets the right length to 0.
        int count = 0;
        var start = new int[length];
        var len = new int[length];
        for (int i = 0; i < length;)
        {
            int n = char.IsHighSurrogate(text[i]) && i + 1 < length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            start[count] = i;
            len[count] = n;
            count++;
            i += n;
        }
        var prev = new int[count];
        var next = new int[count];
        for (int i = 0; i < count; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < count ? i + 1 : -1;
        }

        var queue = new PriorityQueue<Bigram, Bigram>(count, BigramOrder.Instance);
        for (int i = 1; i < count; i++)
            TryAddBigram(i - 1, i);

        while (queue.TryDequeue(out Bigram bigram, out _))
        {
            int l = bigram.Left, r = bigram.Right;
            // Skip pairs made stale by an earlier merge (a side was absorbed or grew).
            if (len[l] == 0 || len[r] == 0 || len[l] + len[r] != bigram.Size)
                continue;
            len[l] += len[r];
            len[r] = 0;
            next[l] = next[r];
            if (next[r] >= 0)
                prev[next[r]] = l;
            TryAddBigram(prev[l], l);
            TryAddBigram(l, next[l]);
        }

        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i >= 0 && count > 0; i = next[i])
        {
            ReadOnlySpan<char> piece = text.AsSpan(start[i], len[i]);
            int id = Lookup(piece);
            if (id >= 0)
            {
                output.Add(id);
                continue;
            }
            // Only single code points can be missing: every merged symbol is a vocabulary entry.
            int bytes = Encoding.UTF8.GetBytes(piece, utf8);
            for (int k = 0; k < bytes; k++)
                output.Add(ByteToken(utf8[k]));
        }

        void TryAddBigram(int left, int right)
        {
            if (left < 0 || right < 0)
                return;
            int size = len[left] + len[right];
            int id = Lookup(text.AsSpan(start[left], size));
            if (id < 0)
                return;
            var b = new Bigram(left, right, _scores[id], size);
            queue.Enqueue(b, b);
        }
    }

    private int ByteToken(byte b)
    {
        int id = _byteTokens[b];
        if (id >= 0)
            return id;
        if (UnknownId >= 0)
            return UnknownId;
        throw new TokenizerException(TokenizerVocab.Keys.Tokens,
            $"the text needs byte 0x{b:X2}, but the vocabulary has no <0x{b:X2}> token and no unknown token");
    }

    private readonly record struct Bigram(int Left, int Right, float Score, int Size);

    /// <summary>Highest score first; on equal scores the leftmost pair (llama.cpp's llm_bigram_spm order).</summary>
    private sealed class BigramOrder : IComparer<Bigram>
    {
        public static readonly BigramOrder Instance = new();

        public int Compare(Bigram x, Bigram y)
        {
            int c = y.Score.CompareTo(x.Score);
            return c != 0 ? c : x.Left.CompareTo(y.Left);
        }
    }
}
