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
        return Synthetic("tiny", DataType.Q8_0, "the default model (tiny synthetic, q8_0)");
    }

    /// <summary>The synthetic model of <paramref name="shape"/> and <paramref name="type"/> under $SERVING_HOME/models
    /// (seed 1), created on first use: what <c>bench --shape 1b --type q4_0</c> runs.</summary>
    public static string Synthetic(string shape, DataType type, string? what = null)
    {
        string home = Environment.GetEnvironmentVariable("SERVING_HOME") is { Length: > 0 } h
            ? h
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "serving");
        string file = Path.Combine(home, "models", $"{shape.ToLowerInvariant()}-{type.Name()}.gguf");
        if (!File.Exists(file))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            Console.Error.WriteLine($"creating {what ?? $"the synthetic {shape} {type.Name()} model"} at {file}");
            // A unique temp name (PIDs repeat across containers sharing a cache) and an atomic rename: a concurrent
            // run never sees a half-written file, and the loser of a race simply replaces an identical one.
            string temp = file + $".{Guid.NewGuid():N}.tmp";
            try
            {
                ProgressBar.Run($"creating {shape} {type.Name()}", ProgressUnit.Bytes, bar => SyntheticModel.Create(shape, type, temp, seed: 1, progress: bar));
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
