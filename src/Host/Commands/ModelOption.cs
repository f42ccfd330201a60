using System.CommandLine;
using Serving.Abstractions;
using Serving.Engine.Synthetic;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary>
/// The --model option and the built-in default: with no --model, the tiny synthetic q8_0 model, created on first
/// use under $SERVING_HOME (default ~/.cache/serving) so every command works without a download.
/// </summary>
internal static class ModelOption
{
    public static Option<string?> Create() => new("--model", "-m")
    {
        Description = "GGUF model file (default: the built-in tiny synthetic model, created on first use)",
    };

    /// <summary>The model path to use: the given one (must exist) or the default, created if missing.</summary>
    public static string Resolve(string? path)
    {
        if (path is not null)
        {
            if (!File.Exists(path)) throw new FileNotFoundException($"model file not found: {path}", path);
            return path;
        }
        string home = Environment.GetEnvironmentVariable("SERVING_HOME") is { Length: > 0 } h
            ? h
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "serving");
        string file = Path.Combine(home, "models", "tiny-q8_0.gguf");
        if (!File.Exists(file))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            Console.Error.WriteLine($"creating the default model (tiny synthetic, q8_0) at {file}");
            // A unique temp name (PIDs repeat across containers sharing a cache) and an atomic rename: a concurrent
            // run never sees a half-written file, and the loser of a race simply replaces an identical one.
            string temp = file + $".{Guid.NewGuid():N}.tmp";
            try
            {
                ProgressBar.Run("creating default model", ProgressUnit.Bytes, bar => SyntheticModel.Create("tiny", DataType.Q8_0, temp, seed: 1, progress: bar));
                File.Move(temp, file, overwrite: true);
            }
            finally
            {
                File.Delete(temp);
            }
        }
        return file;
    }
}
