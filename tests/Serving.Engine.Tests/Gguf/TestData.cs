using System.Runtime.CompilerServices;

namespace Serving.Engine.Tests.Gguf;

/// <summary>
/// Locates the repository's test data, <c>tests/data</c> under the repository root (the folder holding
/// Serving.sln). The search starts at the test binaries, then the working directory, then this source file's
/// compile-time location (builds with --artifacts-path put the binaries outside the repository). Missing data is
/// an error naming where it was looked for, never a skip.
/// </summary>
internal static class TestData
{
    private static readonly Lazy<string> s_root = new(() => FindRoot());

    /// <summary>tests/data/tokenizer: llama.cpp's vocabulary files and tokenizer vectors (see its README.md).</summary>
    public static string TokenizerDir => Require("tokenizer");

    /// <summary>
    /// The absolute path of <c>tests/data/<paramref name="relative"/></c>. Throws
    /// <see cref="DirectoryNotFoundException"/> naming the expected path when the folder is absent, and
    /// <see cref="InvalidOperationException"/> when no repository root is found.
    /// </summary>
    public static string Require(string relative)
    {
        string dir = Path.Combine(s_root.Value, "tests", "data", relative);
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException(
                $"test data folder {dir} is missing: it is part of the repository (git checkout -- tests/data)");
        return dir;
    }

    private static string FindRoot([CallerFilePath] string sourceFile = "")
    {
        string?[] starts = [AppContext.BaseDirectory, Directory.GetCurrentDirectory(), Path.GetDirectoryName(sourceFile)];
        foreach (string? start in starts)
        {
            for (var dir = string.IsNullOrEmpty(start) ? null : new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Serving.sln")))
                    return dir.FullName;
        }
        throw new InvalidOperationException(
            $"Serving.sln not found above {string.Join(", ", starts)}; cannot locate tests/data");
    }
}
