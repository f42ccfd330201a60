using System.Text;
using Serving.Engine.Gguf;

namespace Serving.Engine.Tokenizers;

/// <summary>
/// Text ↔ token ids for a model, built from its GGUF tokenizer metadata and behaving like llama.cpp's
/// llama_vocab: SentencePiece-style (<c>llama</c>) or byte-level BPE (<c>gpt2</c>). Immutable after creation and
/// safe to use from many threads at once.
/// </summary>
public abstract class Tokenizer
{
    [Flags]
    private protected enum TokenAttr : byte
    {
        None = 0,
        Unknown = 1,
        Unused = 2,
        Normal = 4,
        Control = 8,
        UserDefined = 16,
        Byte = 32,
    }

    // Texts llama.cpp treats as end-of-generation whatever their declared type (llama-vocab.cpp's EOG list).
    private static readonly string[] s_eogTexts =
    [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>",
        "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
    ];

    // Texts that identify the end-of-turn token when the metadata does not name it.
    private static readonly string[] s_eotTexts =
    [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
        "_<EOT>", "<end_of_utterance>",
    ];

    private protected readonly string[] _texts;     // [V] token texts as stored in the vocabulary
    private protected readonly TokenAttr[] _attrs;  // [V]
    private protected readonly Dictionary<string, int> _idByText;
    private protected readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _idBySpan;

    private readonly byte[][] _pieces;              // [V] UTF-8 bytes each token decodes to, special tokens included
    private readonly int[] _specialIds;             // control/user-defined/unknown ids, longest text first
    private readonly HashSet<int> _eog;
    private readonly bool _stripFirstSpace;         // llama.cpp's add_space_prefix on decode
    private readonly bool _cleanSpaces;             // llama.cpp's clean_up_tokenization_spaces on decode

    private protected Tokenizer(TokenizerVocab vocab, Defaults defaults)
    {
        string[] tokens = vocab.Tokens;
        int n = tokens.Length;
        if (n == 0)
            throw new TokenizerException(TokenizerVocab.Keys.Tokens, "the vocabulary is empty");
        CheckLength(vocab.Scores?.Length, n, TokenizerVocab.Keys.Scores);
        CheckLength(vocab.TokenTypes?.Length, n, TokenizerVocab.Keys.TokenTypes);
        if (vocab.Scores is { } scores && Array.FindIndex(scores, x => !float.IsFinite(x)) is var bad and >= 0)
            throw new TokenizerException(TokenizerVocab.Keys.Scores, $"the score of token {bad} is {scores[bad]}; merge scores must be finite");

        _texts = new string[n];
        _attrs = new TokenAttr[n];
        _idByText = new Dictionary<string, int>(n, StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
        {
            // llama.cpp renames empty entries rather than rejecting the vocabulary; ids stay aligned.
            string text = string.IsNullOrEmpty(tokens[i]) ? $"[EMPTY_{i}]" : tokens[i];
            if (!_idByText.TryAdd(text, i))
                throw new TokenizerException(TokenizerVocab.Keys.Tokens, $"duplicate token '{text}' at ids {_idByText[text]} and {i}");
            _texts[i] = text;
            _attrs[i] = vocab.TokenTypes is null ? TokenAttr.Normal : ToAttr(vocab.TokenTypes[i]);
        }
        _idBySpan = _idByText.GetAlternateLookup<ReadOnlySpan<char>>();

        BosId = SpecialId(vocab.BosId, defaults.Bos, n, TokenizerVocab.Keys.BosId);
        EosId = SpecialId(vocab.EosId, defaults.Eos, n, TokenizerVocab.Keys.EosId);
        UnknownId = SpecialId(vocab.UnkId, defaults.Unk, n, TokenizerVocab.Keys.UnkId);
        EotId = SpecialId(vocab.EotId, FindByText(s_eotTexts), n, TokenizerVocab.Keys.EotId);
        EomId = SpecialId(vocab.EomId, FindByText(["<|eom_id|>"]), n, TokenizerVocab.Keys.EomId);
        AddBos = vocab.AddBos ?? defaults.AddBos;
        if (AddBos && BosId < 0)
            throw new TokenizerException(TokenizerVocab.Keys.AddBos, $"is true, but {TokenizerVocab.Keys.BosId} is not set");
        _stripFirstSpace = vocab.AddSpacePrefix ?? defaults.AddSpacePrefix;
        _cleanSpaces = defaults.CleanSpaces;

        _eog = BuildEndOfGeneration();
        _specialIds = Enumerable.Range(0, n)
            .Where(i => (_attrs[i] & (TokenAttr.Control | TokenAttr.UserDefined | TokenAttr.Unknown)) != 0)
            .OrderByDescending(i => _texts[i].Length).ThenBy(i => i)
            .ToArray();

        _pieces = new byte[n][];
        for (int i = 0; i < n; i++)
            _pieces[i] = BuildPiece(i, vocab.TokenTypes is null ? 0 : vocab.TokenTypes[i]);

        // Tokens plain text can produce: normal and user-defined ones (a byte or unknown token covers one character,
        // control tokens are only matched when special tokens are parsed).
        int longest = 1;
        for (int i = 0; i < n; i++)
            if ((_attrs[i] & (TokenAttr.Normal | TokenAttr.UserDefined)) != 0)
                longest = Math.Max(longest, _texts[i].Length);
        MaxTokenLength = longest;
    }

    /// <summary>
    /// The longest text, in chars, one token of plain text covers (byte-level BPE spells each byte as one char, and a
    /// text has at least as many UTF-8 bytes as chars). So a text of n chars encodes to at least
    /// ⌈n / MaxTokenLength⌉ tokens: a request whose text is too long for a token limit can be refused without
    /// tokenizing it.
    /// </summary>
    public int MaxTokenLength { get; }

    /// <summary>Model-kind defaults a subclass hands to the base constructor.</summary>
    private protected readonly record struct Defaults(int Bos, int Eos, int Unk, bool AddBos, bool AddSpacePrefix, bool CleanSpaces);

    /// <summary>Number of token ids (V); valid ids are 0..V-1.</summary>
    public int VocabSize => _texts.Length;

    /// <summary>Beginning-of-sequence id, or -1 when the vocabulary has none.</summary>
    public int BosId { get; }

    /// <summary>End-of-sequence id, or -1 when the vocabulary has none.</summary>
    public int EosId { get; }

    /// <summary>End-of-turn id (from metadata or found by text), or -1.</summary>
    public int EotId { get; }

    /// <summary>End-of-message id (from metadata or found by text), or -1.</summary>
    public int EomId { get; }

    /// <summary>Unknown-token id, or -1.</summary>
    public int UnknownId { get; }

    /// <summary>Whether the model expects prompts to start with <see cref="BosId"/>; pass it to <see cref="Encode"/>.</summary>
    public bool AddBos { get; }

    /// <summary>"llama" or "gpt2": the <c>tokenizer.ggml.model</c> this tokenizer implements.</summary>
    public abstract string Model { get; }

    /// <summary>
    /// Reads and validates the tokenizer metadata of <paramref name="file"/> (see <see cref="TokenizerVocab.FromMetadata"/>
    /// and <see cref="Create"/>). The tokenizer keeps no reference to the file.
    /// </summary>
    /// <exception cref="GgufFormatException">A tokenizer key is missing or has the wrong type, or a special id is outside the vocabulary.</exception>
    /// <exception cref="TokenizerException">The metadata is inconsistent or names an unsupported model or pre-tokenizer.</exception>
    public static Tokenizer FromGguf(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        return Create(TokenizerVocab.FromMetadata(file.Metadata));
    }

    /// <summary>
    /// Builds the tokenizer <paramref name="vocab"/> describes: hash tables of tokens (and merges for BPE) and a
    /// decoded piece per token, in time linear in the vocabulary size.
    /// </summary>
    /// <exception cref="TokenizerException">
    /// Unsupported model or pre-tokenizer; scores/types not one per token; duplicate tokens; a special id outside
    /// the vocabulary; missing merges for BPE; a byte token whose text is not &lt;0xXX&gt;.
    /// </exception>
    public static Tokenizer Create(TokenizerVocab vocab)
    {
        ArgumentNullException.ThrowIfNull(vocab);
        ArgumentNullException.ThrowIfNull(vocab.Tokens);
        return vocab.Model switch
        {
            "llama" => new SpmTokenizer(vocab),
            "gpt2" => new BpeTokenizer(vocab),
            _ => throw new TokenizerException(TokenizerVocab.Keys.Model,
                $"unsupported tokenizer model '{vocab.Model}'; supported: llama (SentencePiece), gpt2 (byte-level BPE)"),
        };
    }

    /// <summary>True when generating <paramref name="id"/> ends a response (EOS, EOT, EOM and llama.cpp's end-of-generation texts).</summary>
    public bool IsEndOfGeneration(int id) => _eog.Contains(id);

    /// <summary>
    /// Token ids for <paramref name="text"/>, as llama.cpp's <c>llama_tokenize</c>. With <paramref name="addBos"/>
    /// the result starts with <see cref="BosId"/> (pass <see cref="AddBos"/> for a model prompt). With
    /// <paramref name="parseSpecial"/> false (the default, and how llama.cpp's tokenizer tests run) control-token
    /// texts such as "&lt;|eot_id|&gt;" in the input are plain text; user-defined tokens are always matched.
    /// </summary>
    /// <exception cref="InvalidOperationException"><paramref name="addBos"/> is true but the vocabulary has no BOS.</exception>
    public int[] Encode(string text, bool addBos, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (addBos && BosId < 0)
            throw new InvalidOperationException("this vocabulary has no BOS token");
        text = Codepoints.Sanitize(text);

        var output = new List<int>(text.Length / 3 + 2);
        if (addBos)
            output.Add(BosId);
        bool afterSpecial = true; // the text start counts as following a special token (SentencePiece space prefix)
        foreach (var (id, start, length) in Partition(text, parseSpecial))
        {
            if (id >= 0)
            {
                output.Add(id);
                afterSpecial = true;
            }
            else
            {
                EncodeText(text.AsSpan(start, length), afterSpecial, output);
                afterSpecial = false;
            }
        }
        return output.ToArray();
    }

    /// <summary>
    /// Text of <paramref name="ids"/>, as llama.cpp's <c>llama_detokenize</c> (not removing BOS/EOS): pieces are
    /// concatenated as bytes then read as UTF-8 (invalid or incomplete sequences become U+FFFD); a SentencePiece
    /// vocabulary drops the leading space its encoder added; GPT-2-style vocabularies clean spaces before
    /// punctuation (" ," → ","). Control and unknown tokens are left out unless <paramref name="renderSpecial"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside 0..<see cref="VocabSize"/>-1.</exception>
    public string Decode(ReadOnlySpan<int> ids, bool renderSpecial = false)
    {
        var bytes = new List<byte>(ids.Length * 4);
        bool removeSpace = _stripFirstSpace;
        foreach (int id in ids)
        {
            ReadOnlySpan<byte> piece = TokenToBytes(id, renderSpecial);
            if (removeSpace && piece.Length > 0 && piece[0] == (byte)' ')
                piece = piece[1..];
            removeSpace = false;
            foreach (byte b in piece)
                bytes.Add(b);
        }
        byte[] text = bytes.ToArray();
        int length = _cleanSpaces ? CleanSpaces(text) : text.Length;
        return Encoding.UTF8.GetString(text, 0, length);
    }

    /// <summary>
    /// The text of one token with special tokens shown (llama.cpp's token_to_piece with special = true). A byte
    /// token alone is usually part of a UTF-8 sequence and shows as U+FFFD; use <see cref="StreamingDecoder"/>
    /// or <see cref="Decode"/> to join pieces.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is outside the vocabulary.</exception>
    public string TokenToPiece(int id) => Encoding.UTF8.GetString(TokenToBytes(id, renderSpecial: true));

    /// <summary>
    /// The UTF-8 bytes token <paramref name="id"/> contributes to decoded text: empty for control and unknown
    /// tokens unless <paramref name="renderSpecial"/>, and for unused ones. The span is owned by the tokenizer.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is outside the vocabulary.</exception>
    public ReadOnlySpan<byte> TokenToBytes(int id, bool renderSpecial = false)
    {
        if ((uint)id >= (uint)_texts.Length)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id must be in 0..{_texts.Length - 1}");
        if (!renderSpecial && (_attrs[id] & (TokenAttr.Control | TokenAttr.Unknown)) != 0)
            return default;
        return _pieces[id];
    }

    /// <summary>The token's text exactly as stored in the vocabulary ("▁Hello", "Ġworld", "&lt;0x0A&gt;").</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is outside the vocabulary.</exception>
    public string GetTokenText(int id) =>
        (uint)id < (uint)_texts.Length ? _texts[id] : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id must be in 0..{_texts.Length - 1}");

    /// <summary>
    /// Encodes one run of plain text (no special tokens inside). <paramref name="afterSpecial"/> is true at the
    /// start of the input and right after a special token.
    /// </summary>
    private protected abstract void EncodeText(ReadOnlySpan<char> text, bool afterSpecial, List<int> output);

    /// <summary>The bytes a normal (non-special, non-byte) token decodes to.</summary>
    private protected abstract byte[] DecodeNormal(string text);

    /// <summary>Id of the exact text, or -1.</summary>
    private protected int Lookup(ReadOnlySpan<char> text) => _idBySpan.TryGetValue(text, out int id) ? id : -1;

    private static void CheckLength(int? length, int tokens, string key)
    {
        if (length is int l && l != tokens)
            throw new TokenizerException(key, $"has {l} entries but {TokenizerVocab.Keys.Tokens} has {tokens}");
    }

    private static int SpecialId(int? given, int fallback, int vocabSize, string key)
    {
        if (given is int id)
        {
            if ((uint)id >= (uint)vocabSize)
                throw new TokenizerException(key, $"token id {id} is not below the vocabulary size {vocabSize}");
            return id;
        }
        // A model default that the vocabulary is too small for means "none", as in llama.cpp.
        return fallback >= 0 && fallback < vocabSize ? fallback : -1;
    }

    private int FindByText(string[] candidates)
    {
        foreach (string t in candidates)
        {
            if (_idByText.TryGetValue(t, out int id))
                return id;
        }
        return -1;
    }

    private static TokenAttr ToAttr(int tokenType) => (TokenType)tokenType switch
    {
        TokenType.Normal => TokenAttr.Normal,
        TokenType.Unknown => TokenAttr.Unknown,
        TokenType.Control => TokenAttr.Control,
        TokenType.UserDefined => TokenAttr.UserDefined,
        TokenType.Unused => TokenAttr.Unused,
        TokenType.Byte => TokenAttr.Byte,
        _ => TokenAttr.None,
    };

    private HashSet<int> BuildEndOfGeneration()
    {
        var eog = new HashSet<int>();
        foreach (string t in s_eogTexts)
        {
            if (_idByText.TryGetValue(t, out int id))
                eog.Add(id);
        }
        foreach (int id in new[] { EosId, EotId, EomId })
        {
            if (id >= 0)
                eog.Add(id);
        }
        // gpt-oss: "<|end|>" ends a message but not the response when "<|return|>" and "<|call|>" exist.
        if (_idByText.ContainsKey("<|return|>") && _idByText.ContainsKey("<|call|>") && _idByText.TryGetValue("<|end|>", out int end))
        {
            eog.Remove(end);
            _attrs[end] = TokenAttr.UserDefined;
        }
        // Anything that ends generation is a control token even when the converter typed it otherwise
        // (llama.cpp does the same, which keeps e.g. "<|endoftext|>" in plain text from being matched).
        foreach (int id in eog)
            _attrs[id] |= TokenAttr.Control;
        return eog;
    }

    private byte[] BuildPiece(int id, int rawType)
    {
        TokenAttr a = _attrs[id];
        string text = _texts[id];
        if ((a & (TokenAttr.Unknown | TokenAttr.Control | TokenAttr.UserDefined)) != 0)
            return Encoding.UTF8.GetBytes(text);
        if ((a & TokenAttr.Normal) != 0)
            return DecodeNormal(text);
        if ((a & TokenAttr.Byte) != 0)
        {
            if (text.Length != 6 || !text.StartsWith("<0x", StringComparison.Ordinal) || text[5] != '>'
                || !byte.TryParse(text.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out byte b))
            {
                throw new TokenizerException(TokenizerVocab.Keys.TokenTypes,
                    $"token {id} has type {(TokenType)rawType} but its text '{text}' is not of the form <0xXX>");
            }
            return [b];
        }
        return []; // unused / undefined tokens decode to nothing
    }

    /// <summary>
    /// Splits <paramref name="text"/> around special tokens, longest first (llama.cpp's tokenizer_st_partition):
    /// id ≥ 0 is a matched token; id = -1 is a run of plain text [start, start + length).
    /// </summary>
    private List<(int Id, int Start, int Length)> Partition(string text, bool parseSpecial)
    {
        var fragments = new List<(int Id, int Start, int Length)>();
        if (text.Length == 0)
            return fragments;
        fragments.Add((-1, 0, text.Length));
        foreach (int special in _specialIds)
        {
            if (!parseSpecial && (_attrs[special] & (TokenAttr.Control | TokenAttr.Unknown)) != 0)
                continue;
            string needle = _texts[special];
            for (int f = 0; f < fragments.Count; f++)
            {
                var (id, start, length) = fragments[f];
                if (id >= 0)
                    continue;
                int at = text.AsSpan(start, length).IndexOf(needle, StringComparison.Ordinal);
                if (at < 0)
                    continue;
                // Replace the fragment with [left] special [right]; the right part is searched next iteration.
                var parts = new List<(int, int, int)>(3);
                if (at > 0)
                    parts.Add((-1, start, at));
                parts.Add((special, start + at, needle.Length));
                int rightStart = start + at + needle.Length;
                int rightLength = start + length - rightStart;
                if (rightLength > 0)
                    parts.Add((-1, rightStart, rightLength));
                fragments.RemoveAt(f);
                fragments.InsertRange(f, parts);
                f += at > 0 ? 1 : 0; // continue with the special token; the loop's f++ moves to the right part
            }
        }
        return fragments;
    }

    /// <summary>
    /// llama.cpp's clean_up_tokenization_spaces on decoded bytes, in place: drops the space in " ?", " !", " .",
    /// " ,"; turns " ' " into "'"; and drops the space before "'s", "'m", "'re", "'ve". Returns the new length.
    /// </summary>
    private static int CleanSpaces(byte[] text)
    {
        int total1 = text.Length;
        int total = total1 > 0 ? 1 : 0;
        for (int i = 1; i < total1; i++)
        {
            byte x = text[i];
            if (text[i - 1] == ' ' && x is (byte)'?' or (byte)'!' or (byte)'.' or (byte)',')
                total--;
            text[total++] = x;
        }

        int total2 = total;
        total = total2 > 0 ? 1 : 0;
        for (int i = 1; i < total2; i++)
        {
            byte x = text[i];
            if (x == '\'' && i + 1 < total2 && text[i - 1] == ' ' && text[i + 1] == ' ')
            {
                total--;        // the space before
                text[++i] = 0;  // and the space after (skipped, and no longer a space for the next check)
            }
            text[total++] = x;
        }

        int total3 = total;
        total = total3 > 0 ? 1 : 0;
        for (int i = 1; i < total3; i++)
        {
            byte x = text[i];
            if (text[i - 1] == ' ' && x == '\'' && i + 1 < total3)
            {
                byte x1 = text[i + 1];
                if (x1 is (byte)'s' or (byte)'m')
                    total--;
                else if (i + 2 < total3 && ((x1 == 'r' && text[i + 2] == 'e') || (x1 == 'v' && text[i + 2] == 'e')))
                    total--;
            }
            text[total++] = x;
        }
        return total;
    }
}
