using System.Text;

namespace Serving.Engine.Tokenizers;

/// <summary>
/// Byte-level BPE tokenizer (<c>tokenizer.ggml.model = gpt2</c>), as llama.cpp's llm_tokenizer_bpe: the
/// pre-tokenizer named by <c>tokenizer.ggml.pre</c> splits text into words; each word's UTF-8 bytes are spelled
/// with GPT-2's byte characters; then adjacent symbols are merged by merge rank (lowest first, leftmost on ties)
/// until no listed merge applies.
/// </summary>
internal sealed class BpeTokenizer : Tokenizer
{
    // "left right" → rank; the merge strings themselves are the keys. Byte-level symbols never contain ' '
    // (a space is spelled 'Ġ'), so the joined form is unambiguous and lookups need no (left, right) tuple.
    private readonly Dictionary<string, int> _ranks;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _rankBySpan;
    private readonly BpePreTokenizer _pre;

    internal BpeTokenizer(TokenizerVocab vocab) : this(vocab, BpePreTokenizer.ForName(vocab.Pre))
    {
    }

    private BpeTokenizer(TokenizerVocab vocab, BpePreTokenizer pre)
        : base(vocab, new Defaults(Bos: -1, Eos: -1, Unk: -1, AddBos: pre.AddBos, AddSpacePrefix: false, CleanSpaces: pre.CleanSpaces))
    {
        _pre = pre;
        string[] merges = vocab.Merges
            ?? throw new TokenizerException(TokenizerVocab.Keys.Merges, "is required for a gpt2 (BPE) vocabulary but is missing");
        _ranks = new Dictionary<string, int>(merges.Length, StringComparer.Ordinal);
        for (int i = 0; i < merges.Length; i++)
        {
            string m = merges[i] ?? "";
            // llama.cpp splits at the first space after the first character and keeps the first rank of a
            // repeated merge; an entry without a space can never apply.
            if (m.IndexOf(' ', Math.Min(1, m.Length)) < 0)
                continue;
            _ranks.TryAdd(m, i);
        }
        _rankBySpan = _ranks.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <inheritdoc/>
    public override string Model => "gpt2";

    /// <summary>The pre-tokenizer name in use.</summary>
    public string PreTokenizer => _pre.Name;

    private protected override byte[] DecodeNormal(string text)
    {
        var bytes = new List<byte>(text.Length);
        foreach (char c in text)
        {
            int b = ByteLevel.ToByte(c);
            if (b >= 0)
            {
                bytes.Add((byte)b);
                continue;
            }
            // A character outside the byte alphabet: shown the way llama.cpp's llama_decode_text shows it.
            bytes.AddRange(Encoding.UTF8.GetBytes($"[UNK_BYTE_0x{Convert.ToHexStringLower(Encoding.UTF8.GetBytes(c.ToString()))}{text}]"));
        }
        return bytes.ToArray();
    }

    private protected override void EncodeText(ReadOnlySpan<char> text, bool afterSpecial, List<int> output)
    {
        var scratch = new Scratch();
        foreach (string word in _pre.Split(text.ToString()))
            EncodeWord(ByteLevel.Encode(word), output, scratch);
    }

    /// <summary>Per-call work arrays reused across the words of one text (most words are short).</summary>
    private sealed class Scratch
    {
        public int[] Len = new int[64];
        public int[] Prev = new int[64];
        public int[] Next = new int[64];
        public char[] Key = new char[129];
        public readonly PriorityQueue<Bigram, Bigram> Queue = new(64, BigramOrder.Instance);

        public void Ensure(int count)
        {
            if (Len.Length >= count)
                return;
            int n = Math.Max(count, Len.Length * 2);
            Len = new int[n];
            Prev = new int[n];
            Next = new int[n];
            Key = new char[2 * n + 1];
        }
    }

    private void EncodeWord(string word, List<int> output, Scratch scratch)
    {
        if (word.Length == 0)
            return;
        if (_pre.IgnoreMerges)
        {
            int whole = Lookup(word);
            if (whole >= 0)
            {
                output.Add(whole);
                return;
            }
        }

        // One symbol per character (byte characters are all in the BMP), as a linked list over `word`.
        int count = word.Length;
        scratch.Ensure(count);
        int[] len = scratch.Len, prev = scratch.Prev, next = scratch.Next;
        for (int i = 0; i < count; i++)
        {
            len[i] = 1;
            prev[i] = i - 1;
            next[i] = i + 1 < count ? i + 1 : -1;
        }

        Span<char> key = scratch.Key; // a pair's key "left right" is at most count + 1 chars
        PriorityQueue<Bigram, Bigram> queue = scratch.Queue;
        queue.Clear();
        for (int i = 1; i < count; i++)
            TryAddBigram(i - 1, i, key);

        while (queue.TryDequeue(out Bigram bigram, out _))
        {
            int l = bigram.Left, r = bigram.Right;
            // Stale when a side was absorbed or grew since the pair was queued (the text is then different).
            if (len[l] == 0 || len[r] == 0 || len[l] + len[r] != bigram.Size)
                continue;
            len[l] += len[r];
            len[r] = 0;
            next[l] = next[r];
            if (next[r] >= 0)
                prev[next[r]] = l;
            TryAddBigram(prev[l], l, key);
            TryAddBigram(l, next[l], key);
        }

        for (int i = 0; i >= 0; i = next[i])
        {
            ReadOnlySpan<char> symbol = word.AsSpan(i, len[i]);
            int id = Lookup(symbol);
            if (id >= 0)
            {
                output.Add(id);
                continue;
            }
            // No token for the symbol: llama.cpp emits tokens for those of its characters that are single-byte
            // (ASCII) tokens and drops the rest.
            foreach (char c in symbol)
            {
                if (c < 0x80)
                {
                    int single = Lookup([c]);
                    if (single >= 0)
                        output.Add(single);
                }
            }
        }

        void TryAddBigram(int left, int right, Span<char> keyBuffer)
        {
            if (left < 0 || right < 0)
                return;
            int ll = len[left], rl = len[right];
            word.AsSpan(left, ll).CopyTo(keyBuffer);
            keyBuffer[ll] = ' ';
            word.AsSpan(right, rl).CopyTo(keyBuffer[(ll + 1)..]);
            if (!_rankBySpan.TryGetValue(keyBuffer[..(ll + 1 + rl)], out int rank))
                return;
            var b = new Bigram(left, right, rank, ll + rl);
            queue.Enqueue(b, b);
        }
    }

    private readonly record struct Bigram(int Left, int Right, int Rank, int Size);

    /// <summary>Lowest rank first; on equal ranks the leftmost pair (llama.cpp's llm_bigram_bpe order).</summary>
    private sealed class BigramOrder : IComparer<Bigram>
    {
        public static readonly BigramOrder Instance = new();

        public int Compare(Bigram x, Bigram y)
        {
            int c = x.Rank.CompareTo(y.Rank);
            return c != 0 ? c : x.Left.CompareTo(y.Left);
        }
    }
}
