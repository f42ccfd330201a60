using System.Globalization;
using System.Text;

namespace Serving.Engine.Tokenizers;

/// <summary>
/// Unicode classes of one code point as llama.cpp's pre-tokenizers see them (its unicode_cpt_flags): the
/// general category group (\p{L}, \p{N}, \p{P}, \p{S}, \p{M}, \p{Z}, \p{C}; unassigned code points count as \p{C},
/// as Python's <c>regex</c> module that generated llama.cpp's tables says) plus the Unicode White_Space property
/// for \s. Categories come from .NET's Unicode tables, so a code point assigned in a newer Unicode version than
/// llama.cpp's table may differ; everything in the test vectors is long assigned.
/// </summary>
[Flags]
internal enum CodepointFlags : ushort
{
    /// <summary>No flags: a position outside the text being split (never a real code point).</summary>
    None = 0,
    /// <summary>\p{N}.</summary>
    Number = 0x0002,
    /// <summary>\p{L}.</summary>
    Letter = 0x0004,
    /// <summary>\p{Z}.</summary>
    Separator = 0x0008,
    /// <summary>\p{M}.</summary>
    AccentMark = 0x0010,
    /// <summary>\p{P}.</summary>
    Punctuation = 0x0020,
    /// <summary>\p{S}.</summary>
    Symbol = 0x0040,
    /// <summary>\p{C}, including unassigned code points and lone surrogates.</summary>
    Control = 0x0080,
    /// <summary>Unicode White_Space: what \s matches in Python/Rust regexes.</summary>
    Whitespace = 0x0100,
}

/// <summary>Looks up <see cref="CodepointFlags"/> and small code-point helpers shared by the tokenizers.</summary>
internal static class Codepoints
{
    /// <summary>U+2581 LOWER ONE EIGHTH BLOCK: SentencePiece's visible stand-in for a space.</summary>
    public const char EscapedSpace = '\u2581';

    // ASCII is by far the most frequent input; a table avoids the category lookup for it.
    private static readonly CodepointFlags[] s_ascii = BuildAscii();

    /// <summary>Flags of <paramref name="cp"/> (a Unicode scalar or lone surrogate value, 0..0x10FFFF).</summary>
    public static CodepointFlags Of(int cp)
    {
        if ((uint)cp < 128)
            return s_ascii[cp];
        return Compute(cp);
    }

    /// <summary>True when <paramref name="cp"/> has the Unicode White_Space property.</summary>
    public static bool IsWhitespace(int cp) => cp switch
    {
        >= 0x09 and <= 0x0D => true,
        0x20 or 0x85 or 0xA0 or 0x1680 => true,
        >= 0x2000 and <= 0x200A => true,
        0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        _ => false,
    };

    /// <summary>Simple lower-case mapping of one code point (used for case-insensitive contractions).</summary>
    public static int ToLower(int cp)
    {
        if (cp < 0x10000)
            return char.ToLowerInvariant((char)cp);
        return Rune.IsValid(cp) ? Rune.ToLowerInvariant(new Rune(cp)).Value : cp;
    }

    /// <summary>
    /// Splits <paramref name="text"/> into code points. Lone UTF-16 surrogates become U+FFFD, which is what
    /// their UTF-8 encoding (and llama.cpp's decoder) would produce.
    /// </summary>
    public static int[] ToCodepoints(string text)
    {
        var result = new int[text.Length];
        int n = 0;
        for (int i = 0; i < text.Length;)
        {
            Rune.DecodeFromUtf16(text.AsSpan(i), out Rune r, out int used);
            result[n++] = r.Value;
            i += used;
        }
        return n == result.Length ? result : result[..n];
    }

    /// <summary>Replaces lone surrogates with U+FFFD so the string has an exact UTF-8 encoding.</summary>
    public static string Sanitize(string text)
    {
        foreach (char c in text)
        {
            if (char.IsSurrogate(c))
                return Rebuild(text);
        }
        return text;

        static string Rebuild(string text)
        {
            var sb = new StringBuilder(text.Length);
            for (int i = 0; i < text.Length;)
            {
                Rune.DecodeFromUtf16(text.AsSpan(i), out Rune r, out int used);
                sb.Append(r.ToString());
                i += used;
            }
            return sb.ToString();
        }
    }

    private static CodepointFlags[] BuildAscii()
    {
        var t = new CodepointFlags[128];
        for (int i = 0; i < 128; i++)
            t[i] = Compute(i);
        return t;
    }

    private static CodepointFlags Compute(int cp)
    {
        UnicodeCategory cat = (uint)cp <= 0x10FFFF ? CharUnicodeInfo.GetUnicodeCategory(cp) : UnicodeCategory.OtherNotAssigned;
        CodepointFlags f = cat switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CodepointFlags.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber
                => CodepointFlags.Number,
            UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
                => CodepointFlags.AccentMark,
            UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
                or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
                or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation => CodepointFlags.Punctuation,
            UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol or UnicodeCategory.ModifierSymbol
                or UnicodeCategory.OtherSymbol => CodepointFlags.Symbol,
            UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
                => CodepointFlags.Separator,
            _ => CodepointFlags.Control,
        };
        if (IsWhitespace(cp))
            f |= CodepointFlags.Whitespace;
        return f;
    }
}
