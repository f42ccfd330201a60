using System.Text;
using System.Text.RegularExpressions;

namespace Serving.Engine.Tokenizers;

/// <summary>
/// Splits text into the words byte-level BPE merges within, chosen by <c>tokenizer.ggml.pre</c> as llama.cpp
/// does (llm_tokenizer_bpe + unicode_regex_split). A pre-tokenizer is a sequence of stages; each stage splits
/// every piece from the previous stage further, keeping both its matches and the text between them.
/// The GPT-2 and Llama-3 patterns run as hand-written scanners equivalent to llama.cpp's custom splitters;
/// other patterns run as .NET regexes over llama.cpp's "collapsed" text, where each non-ASCII code point is
/// replaced by one placeholder per Unicode class so the regex sees exactly the classes llama.cpp's does.
/// </summary>
internal sealed class BpePreTokenizer
{
    /// <summary>GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Llama 3 (case-insensitive contractions written out as llama.cpp does).</summary>
    public const string Llama3Pattern =
        @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private const string Qwen2Pattern =
        @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private const string PunctuationRun = @"[\p{P}\$\+<=>\^~\|]+";

    private delegate void Stage(int[] cps, List<int> pieces, List<int> result);

    private readonly Stage[] _stages;

    private BpePreTokenizer(string name, bool cleanSpaces, bool ignoreMerges, bool addBos, params Stage[] stages)
    {
        Name = name;
        CleanSpaces = cleanSpaces;
        IgnoreMerges = ignoreMerges;
        AddBos = addBos;
        _stages = stages;
    }

    /// <summary>The <c>tokenizer.ggml.pre</c> name this was built for.</summary>
    public string Name { get; }

    /// <summary>Whether decoding cleans spaces before punctuation (llama.cpp's clean_spaces for this pre).</summary>
    public bool CleanSpaces { get; }

    /// <summary>Whether a word that is itself a token skips merging (llama.cpp's ignore_merges).</summary>
    public bool IgnoreMerges { get; }

    /// <summary>The default for add_bos_token with this pre-tokenizer.</summary>
    public bool AddBos { get; }

    /// <summary>Names accepted by <see cref="ForName"/>.</summary>
    public static IReadOnlyList<string> SupportedNames { get; } =
    [
        "default", "gpt-2", "phi-2", "mpt", "olmo", "llama3", "llama-v3", "llama-bpe", "dbrx", "smaug-bpe",
        "qwen2", "deepseek-r1-qwen", "starcoder", "refact", "smollm", "falcon",
    ];

    /// <summary>
    /// The pre-tokenizer llama.cpp uses for <paramref name="pre"/> (null or empty = "default").
    /// Throws <see cref="TokenizerException"/> listing the supported names for any other.
    /// </summary>
    public static BpePreTokenizer ForName(string? pre)
    {
        string name = string.IsNullOrEmpty(pre) ? "default" : pre;
        return name switch
        {
            "default" => new(name, true, false, false,
                RegexStage(PunctuationRun), SplitGpt2, RegexStage(@"\p{N}+"), RegexStage("[0-9][0-9][0-9]")),
            "gpt-2" or "phi-2" or "mpt" or "olmo" => new(name, true, false, false, SplitGpt2),
            "llama3" or "llama-v3" or "llama-bpe" => new(name, true, true, true, SplitLlama3),
            "dbrx" or "smaug-bpe" => new(name, true, false, false, SplitLlama3),
            "qwen2" or "deepseek-r1-qwen" => new(name, false, false, false, RegexStage(Qwen2Pattern)),
            "starcoder" or "refact" => new(name, true, false, false, RegexStage(@"\p{N}"), SplitGpt2),
            "smollm" => new(name, false, false, false, RegexStage(@"\p{N}"), SplitGpt2),
            "falcon" => new(name, true, false, false,
                RegexStage(PunctuationRun), SplitGpt2, RegexStage("[0-9][0-9][0-9]")),
            _ => throw new TokenizerException(TokenizerVocab.Keys.Pre,
                $"unsupported pre-tokenizer '{name}'; supported: {string.Join(", ", SupportedNames)}"),
        };
    }

    /// <summary>Splits <paramref name="text"/> (free of lone surrogates) into words, not yet byte-encoded.</summary>
    public List<string> Split(string text)
    {
        int[] cps = Codepoints.ToCodepoints(text);
        var pieces = new List<int> { cps.Length };
        var next = new List<int>();
        foreach (Stage stage in _stages)
        {
            next.Clear();
            stage(cps, pieces, next);
            (pieces, next) = (next, pieces);
        }

        // Pieces count code points; walk the string alongside to cut it in UTF-16 units.
        var words = new List<string>(pieces.Count);
        int cp = 0, at = 0;
        foreach (int n in pieces)
        {
            int from = at;
            for (int end = cp + n; cp < end; cp++)
                at += cps[cp] >= 0x10000 ? 2 : 1;
            words.Add(text.Substring(from, at - from));
        }
        return words;
    }

    /// <summary>
    /// The GPT-2 pattern as a scanner (llama.cpp's unicode_regex_split_custom_gpt2). Like the regex, a whitespace
    /// run followed by a non-space leaves its last whitespace to start the next word (" world").
    /// </summary>
    internal static void SplitGpt2(int[] cps, List<int> pieces, List<int> result)
    {
        int begin = 0;
        foreach (int pieceLength in pieces)
        {
            var s = new Scanner(cps, begin, begin + pieceLength, result);
            begin += pieceLength;
            int pos = s.Begin;
            while (pos < s.End)
            {
                int cp = cps[pos];
                CodepointFlags f = s.Flags(pos);

                if (cp == '\'' && pos + 1 < s.End) // 's|'t|'re|'ve|'m|'ll|'d
                {
                    int c1 = s.Cp(pos + 1);
                    if (c1 is 's' or 't' or 'm' or 'd')
                    {
                        pos = s.Emit(pos + 2);
                        continue;
                    }
                    if (pos + 2 < s.End)
                    {
                        int c2 = s.Cp(pos + 2);
                        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
                        {
                            pos = s.Emit(pos + 3);
                            continue;
                        }
                    }
                }

                CodepointFlags f2 = cp == ' ' ? s.Flags(pos + 1) : f;
                if (Has(f2, CodepointFlags.Letter)) // ' ?\p{L}+'
                {
                    if (cp == ' ') pos++;
                    while (Has(s.Flags(pos), CodepointFlags.Letter)) pos++;
                    pos = s.Emit(pos);
                    continue;
                }
                if (Has(f2, CodepointFlags.Number)) // ' ?\p{N}+'
                {
                    if (cp == ' ') pos++;
                    while (Has(s.Flags(pos), CodepointFlags.Number)) pos++;
                    pos = s.Emit(pos);
                    continue;
                }
                if (IsOther(f2)) // ' ?[^\s\p{L}\p{N}]+'
                {
                    if (cp == ' ') pos++;
                    while (IsOther(s.Flags(pos))) pos++;
                    pos = s.Emit(pos);
                    continue;
                }

                pos = s.Whitespace(pos, stopAfterNewline: false);
            }
        }
    }

    /// <summary>The Llama 3 pattern as a scanner (llama.cpp's unicode_regex_split_custom_llama3).</summary>
    internal static void SplitLlama3(int[] cps, List<int> pieces, List<int> result)
    {
        int begin = 0;
        foreach (int pieceLength in pieces)
        {
            var s = new Scanner(cps, begin, begin + pieceLength, result);
            begin += pieceLength;
            int pos = s.Begin;
            while (pos < s.End)
            {
                int cp = cps[pos];
                CodepointFlags f = s.Flags(pos);

                if (cp == '\'' && pos + 1 < s.End) // (?i:'s|'t|'re|'ve|'m|'ll|'d)
                {
                    int c1 = Codepoints.ToLower(s.Cp(pos + 1));
                    if (c1 is 's' or 't' or 'm' or 'd')
                    {
                        pos = s.Emit(pos + 2);
                        continue;
                    }
                    if (pos + 2 < s.End)
                    {
                        int c2 = Codepoints.ToLower(s.Cp(pos + 2));
                        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
                        {
                            pos = s.Emit(pos + 3);
                            continue;
                        }
                    }
                }

                // [^\r\n\p{L}\p{N}]?\p{L}+
                if (!(cp == '\r' || cp == '\n' || Has(f, CodepointFlags.Number))
                    && (Has(f, CodepointFlags.Letter) || Has(s.Flags(pos + 1), CodepointFlags.Letter)))
                {
                    pos++;
                    while (Has(s.Flags(pos), CodepointFlags.Letter)) pos++;
                    pos = s.Emit(pos);
                    continue;
                }

                if (Has(f, CodepointFlags.Number)) // \p{N}{1,3}
                {
                    int run = pos;
                    while (Has(s.Flags(pos), CodepointFlags.Number))
                    {
                        if (++pos - run >= 3)
                            run = s.Emit(pos);
                    }
                    pos = s.Emit(pos);
                    continue;
                }

                // ' ?[^\s\p{L}\p{N}]+[\r\n]*' — llama.cpp tests the first code point's own flags for "in range",
                // which only differs from the regex at the end of a piece.
                CodepointFlags f2 = cp == ' ' ? s.Flags(pos + 1) : f;
                if (!Has(f2, CodepointFlags.Whitespace | CodepointFlags.Letter | CodepointFlags.Number) && f != CodepointFlags.None)
                {
                    if (cp == ' ') pos++;
                    while (IsOther(s.Flags(pos))) pos++;
                    while (s.Cp(pos) is '\r' or '\n') pos++;
                    pos = s.Emit(pos);
                    continue;
                }

                pos = s.Whitespace(pos, stopAfterNewline: true);
            }
        }
    }

    private static bool Has(CodepointFlags f, CodepointFlags any) => (f & any) != 0;

    // [^\s\p{L}\p{N}] for a position inside the piece (None marks "outside").
    private static bool IsOther(CodepointFlags f) =>
        f != CodepointFlags.None && !Has(f, CodepointFlags.Whitespace | CodepointFlags.Letter | CodepointFlags.Number);

    /// <summary>Cursor over one piece [Begin, End) of the code points, emitting word lengths into a list.</summary>
    private struct Scanner(int[] cps, int begin, int end, List<int> result)
    {
        private int _emitted = begin;

        public readonly int Begin { get; } = begin;

        public readonly int End { get; } = end;

        /// <summary>Code point at <paramref name="pos"/>, or -1 outside the piece.</summary>
        public readonly int Cp(int pos) => pos >= Begin && pos < End ? cps[pos] : -1;

        /// <summary>Flags at <paramref name="pos"/>, or None outside the piece.</summary>
        public readonly CodepointFlags Flags(int pos) => pos >= Begin && pos < End ? Codepoints.Of(cps[pos]) : CodepointFlags.None;

        /// <summary>Ends the current word at <paramref name="pos"/> (nothing when empty); returns <paramref name="pos"/>.</summary>
        public int Emit(int pos)
        {
            if (pos > _emitted)
                result.Add(pos - _emitted);
            _emitted = pos;
            return pos;
        }

        /// <summary>
        /// The whitespace alternatives: (Llama 3 only) \s*[\r\n]+, then \s+(?!\S), then \s+; a lone code point
        /// matching nothing becomes its own word.
        /// </summary>
        public int Whitespace(int pos, bool stopAfterNewline)
        {
            int count = 0;
            int afterLastNewline = -1;
            while (Has(Flags(pos + count), CodepointFlags.Whitespace))
            {
                if (stopAfterNewline && Cp(pos + count) is '\r' or '\n')
                    afterLastNewline = pos + count + 1;
                count++;
            }
            if (afterLastNewline >= 0)
                return Emit(afterLastNewline);
            if (count > 1 && Cp(pos + count) != -1)
                return Emit(pos + count - 1); // leave the last space to prefix the next word
            if (count > 0)
                return Emit(pos + count);
            return Emit(pos + 1);
        }
    }

    // ---- regex stages over collapsed text ----

    private static Stage RegexStage(string pattern)
    {
        Regex regex = s_regexCache.GetOrAdd(pattern, p => new Regex(Collapse(p), RegexOptions.CultureInvariant));
        return (cps, pieces, result) =>
        {
            string collapsed = CollapseText(cps);
            int begin = 0;
            foreach (int pieceLength in pieces)
            {
                // A substring, so lookarounds and anchors see the piece as the whole input, as std::regex_iterator does.
                string piece = collapsed.Substring(begin, pieceLength);
                int last = 0;
                for (Match m = regex.Match(piece); m.Success; m = m.NextMatch())
                {
                    if (m.Length == 0)
                        continue;
                    if (m.Index > last)
                        result.Add(m.Index - last);
                    result.Add(m.Length);
                    last = m.Index + m.Length;
                }
                if (last < pieceLength)
                    result.Add(pieceLength - last);
                begin += pieceLength;
            }
        };
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Regex> s_regexCache = new();

    // Placeholders for non-ASCII code points by class (llama.cpp uses bytes 0xD0..0xD5 and 0x0B the same way).
    private const char OtherPlaceholder = '\u00D0';

    private static char Placeholder(CodepointFlags f) =>
        Has(f, CodepointFlags.Number) ? '\u00D1'
        : Has(f, CodepointFlags.Letter) ? '\u00D2'
        : Has(f, CodepointFlags.Punctuation) ? '\u00D3'
        : Has(f, CodepointFlags.AccentMark) ? '\u00D4'
        : Has(f, CodepointFlags.Symbol) ? '\u00D5'
        : OtherPlaceholder;

    /// <summary>One char per code point: ASCII as is, other whitespace as '\v', others as their class placeholder.</summary>
    private static string CollapseText(int[] cps)
    {
        return string.Create(cps.Length, cps, static (dst, src) =>
        {
            for (int i = 0; i < src.Length; i++)
            {
                int cp = src[i];
                if (cp < 128)
                    dst[i] = (char)cp;
                else
                {
                    CodepointFlags f = Codepoints.Of(cp);
                    dst[i] = Has(f, CodepointFlags.Whitespace) ? '\v' : Placeholder(f);
                }
            }
        });
    }

    /// <summary>Rewrites \p{N}, \p{L}, \p{P}, \p{M}, \p{S} (and \p{Lu} etc.) to placeholder + ASCII members.</summary>
    internal static string Collapse(string pattern)
    {
        var sb = new StringBuilder(pattern.Length * 2);
        bool inside = false;
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '[' && (i == 0 || pattern[i - 1] != '\\'))
            {
                sb.Append('[');
                inside = true;
                continue;
            }
            if (inside && c == ']' && pattern[i - 1] != '\\')
            {
                sb.Append(']');
                inside = false;
                continue;
            }
            if (c == '\\' && i + 3 < pattern.Length && pattern[i + 1] == 'p' && pattern[i + 2] == '{')
            {
                int close = pattern.IndexOf('}', i + 3);
                string? members = close < 0 ? null : pattern[(i + 3)..close] switch
                {
                    "N" => "\\u00D10-9",
                    "L" or "Lu" or "Ll" or "Lt" or "Lm" or "Lo" => "\\u00D2A-Za-z",
                    "P" => "\\u00D3!-#%-*,-/:-;?-@\\[-\\]_\\{\\}",
                    "M" => "\\u00D4",
                    "S" => "\\u00D5\\$\\+<->\\^`\\|", // no '~': llama.cpp's ASCII list for \p{S} omits it
                    _ => null,
                };
                if (members is not null)
                {
                    sb.Append(inside ? members : "[" + members + "]");
                    i = close;
                    continue;
                }
            }
            sb.Append(c);
        }
        return sb.ToString();
    }
}
