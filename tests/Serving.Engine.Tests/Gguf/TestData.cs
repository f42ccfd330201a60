using System.Runtime.CompilerServices;

namespace Serving.Engine.Tests.Gguf;

/// <summary>
/// Locates ../shared/data beside the repository root (the folder holding Serving.sln). The search starts at the
/// test binaries and, because builds may use an --artifacts-path outside the repository, also at this source
/// file's compile-time location. Missing data is an error, never a skip.
/// </summary>
internal static class TestData
{
    public static string TokenizerDir => Path.Combine(SharedDataDir(), "tokenizer");

    public static string SharedDataDir([CallerFilePath] string sourceFile = "")
    {
        string? root = FindRoot(AppContext.BaseDirectory) ?? FindRoot(Path.GetDirectoryName(sourceFile))
            ?? throw new InvalidOperationException(
                $"Serving.sln not found above {AppContext.BaseDirectory} or {sourceFile}; cannot locate ../shared/data");
        string data = Path.GetFullPath(Path.Combine(root, "..", "shared", "data"));
        if (!Directory.Exists(Path.Combine(data, "tokenizer")))
            throw new DirectoryNotFoundException($"test data folder {data}/tokenizer is missing (expected ../shared/data beside the repository {root})");
        return data;
    }

    private static string? FindRoot(string? start)
    {
        for (var dir = start is null ? null : new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Serving.sln")))
                return dir.FullName;
        return null;
    }
}
