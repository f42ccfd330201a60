namespace Serving.Engine.Tokenizers;

/// <summary>
/// GPT-2's reversible byte ↔ character map: byte-level BPE vocabularies spell every byte as a printable character.
/// Bytes '!'..'~', '¡'..'¬' and '®'..'ÿ' stand for themselves; the other 68 bytes (controls, space, 0x7F..0xA0,
/// 0xAD) map in order to U+0100, U+0101, … (so a space is 'Ġ' U+0120 and a newline 'Ċ' U+010A).
/// </summary>
internal static class ByteLevel
{
    private static readonly char[] s_byteToChar = BuildByteToChar();
    private static readonly short[] s_charToByte = BuildCharToByte(); // indexed by char < 0x200; -1 = not a byte char

    /// <summary>The character that spells byte <paramref name="b"/>.</summary>
    public static char ToChar(byte b) => s_byteToChar[b];

    /// <summary>The byte a vocabulary character stands for, or -1 when <paramref name="c"/> spells no byte.</summary>
    public static int ToByte(int c) => (uint)c < (uint)s_charToByte.Length ? s_charToByte[c] : -1;

    /// <summary>Spells the UTF-8 bytes of <paramref name="text"/> with byte characters.</summary>
    public static string Encode(string text)
    {
        // ASCII-only words (the common case) map char by char without a UTF-8 detour.
        if (System.Text.Ascii.IsValid(text))
        {
            return string.Create(text.Length, text, static (dst, src) =>
            {
                for (int i = 0; i < src.Length; i++)
                    dst[i] = s_byteToChar[src[i]];
            });
        }
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(text);
        return string.Create(bytes.Length, bytes, static (dst, src) =>
        {
            for (int i = 0; i < src.Length; i++)
                dst[i] = s_byteToChar[src[i]];
        });
    }

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        var direct = new bool[256];
        for (int b = '!'; b <= '~'; b++) direct[b] = true;
        for (int b = 0xA1; b <= 0xAC; b++) direct[b] = true;
        for (int b = 0xAE; b <= 0xFF; b++) direct[b] = true;
        int next = 0;
        for (int b = 0; b < 256; b++)
            map[b] = direct[b] ? (char)b : (char)(256 + next++);
        return map;
    }

    private static short[] BuildCharToByte()
    {
        var map = new short[0x200];
        Array.Fill(map, (short)-1);
        for (int b = 0; b < 256; b++)
            map[s_byteToChar[b]] = (short)b;
        return map;
    }
}
