using System.Buffers;
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
        // The working arrays grow with the text (a long prompt needs several MB): rented from the shared pool and
        // returned, so a server tokenizing many texts reuses them instead of allocating on the large-object heap.
        char[] text = ArrayPool<char>.Shared.Rent(length);
        int[] start = ArrayPool<int>.Shared.Rent(length), len = ArrayPool<int>.Shared.Rent(length);
        int[] prev = ArrayPool<int>.Shared.Rent(length), next = ArrayPool<int>.Shared.Rent(length);
        var queue = new BigramHeap(length);
        try
        {
            int o = 0;
            if (prefix)
                text[o++] = Codepoints.EscapedSpace;
            foreach (char c in fragment)
                text[o++] = c == ' ' ? Codepoints.EscapedSpace : c;
            Merge(text.AsSpan(0, length), start, len, prev, next, ref queue, output);
        }
        finally
        {
            queue.Dispose();
            ArrayPool<char>.Shared.Return(text);
            ArrayPool<int>.Shared.Return(start);
            ArrayPool<int>.Shared.Return(len);
            ArrayPool<int>.Shared.Return(prev);
            ArrayPool<int>.Shared.Return(next);
        }
    }

    private void Merge(ReadOnlySpan<char> text, int[] start, int[] len, int[] prev, int[] next, ref BigramHeap queue, List<int> output)
    {
        // One symbol per code point: a doubly linked list over char ranges of `text`. Merging moves the right
        // symbol's chars into the left one (they are adjacent) and sets the right length to 0.
        int length = text.Length, count = 0;
        for (int i = 0; i < length;)
        {
            int n = char.IsHighSurrogate(text[i]) && i + 1 < length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            start[count] = i;
            len[count] = n;
            count++;
            i += n;
        }
        for (int i = 0; i < count; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < count ? i + 1 : -1;
        }

        for (int i = 1; i < count; i++)
            TryAddBigram(text, i - 1, i, ref queue);

        while (queue.TryDequeue(out Bigram bigram))
        {
            int l = bigram.Left, r = bigram.Right;
            // Skip pairs made stale by an earlier merge (a side was absorbed or grew). Sizes only grow, so at most one
            // queued pair per left symbol is current: the order among equal (score, left) pairs cannot matter.
            if (len[l] == 0 || len[r] == 0 || len[l] + len[r] != bigram.Size)
                continue;
            len[l] += len[r];
            len[r] = 0;
            next[l] = next[r];
            if (next[r] >= 0)
                prev[next[r]] = l;
            TryAddBigram(text, prev[l], l, ref queue);
            TryAddBigram(text, l, next[l], ref queue);
        }

        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i >= 0 && count > 0; i = next[i])
        {
            ReadOnlySpan<char> piece = text.Slice(start[i], len[i]);
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

        void TryAddBigram(ReadOnlySpan<char> text, int left, int right, ref BigramHeap queue)
        {
            if (left < 0 || right < 0)
                return;
            int size = len[left] + len[right];
            int id = Lookup(text.Slice(start[left], size));
            if (id < 0)
                return;
            queue.Enqueue(new Bigram(left, right, _scores[id], size));
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

    private readonly record struct Bigram(int Left, int Right, float Score, int Size)
    {
        /// <summary>Highest score first; on equal scores the leftmost pair (llama.cpp's llm_bigram_spm order).</summary>
        public bool Before(in Bigram other) => Score != other.Score ? Score > other.Score : Left < other.Left;
    }

    /// <summary>A binary heap of bigrams, best first (<see cref="Bigram.Before"/>), on an array rented from the shared pool.</summary>
    private struct BigramHeap(int capacity) : IDisposable
    {
        private Bigram[] _items = ArrayPool<Bigram>.Shared.Rent(Math.Max(16, capacity));
        private int _count;

        public void Enqueue(Bigram item)
        {
            if (_count == _items.Length)
            {
                Bigram[] bigger = ArrayPool<Bigram>.Shared.Rent(_items.Length * 2);
                _items.AsSpan(0, _count).CopyTo(bigger);
                ArrayPool<Bigram>.Shared.Return(_items);
                _items = bigger;
            }
            int i = _count++;
            while (i > 0)
            {
                int parent = (i - 1) >> 1;
                if (!item.Before(_items[parent]))
                    break;
                _items[i] = _items[parent];
                i = parent;
            }
            _items[i] = item;
        }

        public bool TryDequeue(out Bigram item)
        {
            if (_count == 0)
            {
                item = default;
                return false;
            }
            item = _items[0];
            Bigram last = _items[--_count];
            int i = 0;
            while (true)
            {
                int child = 2 * i + 1;
                if (child >= _count)
                    break;
                if (child + 1 < _count && _items[child + 1].Before(_items[child]))
                    child++;
                if (!_items[child].Before(last))
                    break;
                _items[i] = _items[child];
                i = child;
            }
            if (_count > 0)
                _items[i] = last;
            return true;
        }

        public void Dispose()
        {
            if (_items.Length > 0)
                ArrayPool<Bigram>.Shared.Return(_items);
            _items = [];
        }
    }
}
