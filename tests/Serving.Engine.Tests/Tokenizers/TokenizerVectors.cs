using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Serving.Engine.Gguf;
using Serving.Engine.Tokenizers;

namespace Serving.Engine.Tests.Tokenizers;

/// <summary>
/// llama.cpp's tokenizer vectors from shared/data/tokenizer: for each vocabulary, the test strings of
/// <c>&lt;vocab&gt;.gguf.inp</c> (separated by "\n__ggml_vocab_test__\n", split exactly as test-tokenizer-0 does)
/// and the expected ids of <c>&lt;vocab&gt;.gguf.out</c> (one line per string, no BOS).
/// </summary>
internal static class TokenizerVectors
{
    public const string Spm = "llama-spm";
    public const string Gpt2 = "gpt-2";

    private static readonly ConcurrentDictionary<string, Tokenizer> s_tokenizers = new();
    private static readonly ConcurrentDictionary<string, (string Text, int[] Ids)[]> s_cases = new();

    /// <summary>shared/data/tokenizer, found from Serving.sln; null when the folder is absent.</summary>
    public static string? DataDirectory { get; } = FindDataDirectory();

    /// <summary>Where the data was looked for, for failure messages.</summary>
    public static string ExpectedLocation => "<repo root with Serving.sln>/../shared/data/tokenizer";

    public static string GgufPath(string vocab) => Path.Combine(RequireData(), $"ggml-vocab-{vocab}.gguf");

    public static Tokenizer Load(string vocab) => s_tokenizers.GetOrAdd(vocab, v =>
    {
        using var file = GgufFile.Open(GgufPath(v));
        return Tokenizer.FromGguf(file);
    });

    public static (string Text, int[] Ids)[] Cases(string vocab) => s_cases.GetOrAdd(vocab, ReadCases);

    /// <summary>xunit rows (vocab, index, text) for every string; one failing row naming the problem when data is missing.</summary>
    public static IEnumerable<object[]> Rows(string vocab, Func<string, bool>? include = null)
    {
        if (DataDirectory is null)
        {
            yield return [vocab, -1, "(tokenizer test data missing)"];
            yield break;
        }
        var cases = Cases(vocab);
        for (int i = 0; i < cases.Length; i++)
        {
            if (include is null || include(cases[i].Text))
                yield return [vocab, i, Show(cases[i].Text)];
        }
    }

    public static string RequireData() =>
        DataDirectory ?? throw new InvalidOperationException(
            $"tokenizer test data not found: expected {ExpectedLocation} (looked upward from {AppContext.BaseDirectory}, {Directory.GetCurrentDirectory()} and the test sources)");

    /// <summary>The text with control characters escaped, so test names are readable.</summary>
    public static string Show(string s) =>
        "\"" + s.Replace("\\", "\\\\").Replace("\n", "\\n").Replace("\t", "\\t").Replace("\r", "\\r") + "\"";

    private static (string, int[])[] ReadCases(string vocab)
    {
        string dir = RequireData();
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

    // Walks up from the test binaries, the working directory and this source file's compile-time path (builds
    // with --artifacts-path put the binaries outside the repository) to the folder holding Serving.sln.
    private static string? FindDataDirectory([CallerFilePath] string sourceFile = "")
    {
        string?[] starts = [AppContext.BaseDirectory, Directory.GetCurrentDirectory(), Path.GetDirectoryName(sourceFile)];
        foreach (string? start in starts)
        {
            for (var dir = string.IsNullOrEmpty(start) ? null : new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (!File.Exists(Path.Combine(dir.FullName, "Serving.sln")))
                    continue;
                string data = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "data", "tokenizer"));
                if (Directory.Exists(data))
                    return data;
                break;
            }
        }
        return null;
    }
}
