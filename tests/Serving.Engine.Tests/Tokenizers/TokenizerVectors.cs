using System.Collections.Concurrent;
using Serving.Engine.Gguf;
using Serving.Engine.Tests.Gguf;
using Serving.Engine.Tokenizers;

namespace Serving.Engine.Tests.Tokenizers;

/// <summary>
/// llama.cpp's tokenizer vectors from tests/data/tokenizer: for each vocabulary, the test strings of
/// <c>&lt;vocab&gt;.gguf.inp</c> (separated by "\n__ggml_vocab_test__\n", split exactly as test-tokenizer-0 does)
/// and the expected ids of <c>&lt;vocab&gt;.gguf.out</c> (one line per string, no BOS).
/// </summary>
internal static class TokenizerVectors
{
    public const string Spm = "llama-spm";
    public const string Gpt2 = "gpt-2";

    private static readonly ConcurrentDictionary<string, Tokenizer> s_tokenizers = new();
    private static readonly ConcurrentDictionary<string, (string Text, int[] Ids)[]> s_cases = new();

    /// <summary>tests/data/tokenizer in the repository; throws naming the expected path when it is absent.</summary>
    public static string DataDirectory => TestData.TokenizerDir;

    public static string GgufPath(string vocab) => Path.Combine(DataDirectory, $"ggml-vocab-{vocab}.gguf");

    public static Tokenizer Load(string vocab) => s_tokenizers.GetOrAdd(vocab, v =>
    {
        using var file = GgufFile.Open(GgufPath(v));
        return Tokenizer.FromGguf(file);
    });

    public static (string Text, int[] Ids)[] Cases(string vocab) => s_cases.GetOrAdd(vocab, ReadCases);

    /// <summary>
    /// xunit rows (vocab, index, text) for every string; when the data cannot be read, one row with index −1 whose
    /// text is the error, so the theory fails naming it instead of vanishing from the run.
    /// </summary>
    public static IEnumerable<object[]> Rows(string vocab, Func<string, bool>? include = null)
    {
        (string, int[])[] cases;
        try
        {
            cases = Cases(vocab);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or InvalidDataException)
        {
            return [[vocab, -1, ex.Message]];
        }
        return Enumerate(vocab, cases, include);
    }

    private static IEnumerable<object[]> Enumerate(string vocab, (string Text, int[] Ids)[] cases, Func<string, bool>? include)
    {
        for (int i = 0; i < cases.Length; i++)
        {
            if (include is null || include(cases[i].Text))
                yield return [vocab, i, Show(cases[i].Text)];
        }
    }

    /// <summary>The text with control characters escaped, so test names are readable.</summary>
    public static string Show(string s) =>
        "\"" + s.Replace("\\", "\\\\").Replace("\n", "\\n").Replace("\t", "\\t").Replace("\r", "\\r") + "\"";

    private static (string, int[])[] ReadCases(string vocab)
    {
        string dir = DataDirectory;
        string inp = File.ReadAllText(Path.Combine(dir, $"ggml-vocab-{vocab}.gguf.inp"));
        string[] outLines = File.ReadAllText(Path.Combine(dir, $"ggml-vocab-{vocab}.gguf.out")).Split('\n');
        // std::getline yields no line after a final '\n'.
        if (outLines.Length > 0 && outLines[^1].Length == 0)
            outLines = outLines[..^1];

        const string sep = "\n__ggml_vocab_test__\n";
        var inputs = new List<string>();
        for (int pos = 0; pos < inp.Length;)
        {
            int next = inp.IndexOf(sep, pos, StringComparison.Ordinal);
            if (next < 0)
            {
                inputs.Add(inp[pos..]);
                break;
            }
            inputs.Add(inp[pos..next]);
            pos = next + sep.Length;
        }
        if (inputs.Count != outLines.Length)
            throw new InvalidDataException($"{vocab}: {inputs.Count} test strings but {outLines.Length} expected-id lines");

        var cases = new (string, int[])[inputs.Count];
        for (int i = 0; i < inputs.Count; i++)
        {
            int[] ids = outLines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(int.Parse).ToArray();
            cases[i] = (inputs[i], ids);
        }
        return cases;
    }
}
