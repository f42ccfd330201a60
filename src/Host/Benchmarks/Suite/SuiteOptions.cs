namespace Serving.Host.Benchmarks.Suite;

/// <summary>What <c>bench</c> runs (the command's options, checked).</summary>
internal sealed record SuiteOptions
{
    /// <summary>Device ids to run, in order.</summary>
    public required IReadOnlyList<string> Devices { get; init; }
    /// <summary>The GGUF model file.</summary>
    public required string ModelPath { get; init; }
    /// <summary>The synthetic shape the file was made from, or null for a user's file.</summary>
    public string? Shape { get; init; }
    /// <summary>Prompt tokens of the prompt-processing test (pp).</summary>
    public int Prompt { get; init; } = 512;
    /// <summary>Tokens each sequence generates in a decode test (tg).</summary>
    public int Gen { get; init; } = 128;
    /// <summary>Sequences per decode step, one decode test each.</summary>
    public IReadOnlyList<int> Batches { get; init; } = [1, 4, 16];
    /// <summary>Timed repetitions of every test.</summary>
    public int Repetitions { get; init; } = 5;
    /// <summary>KV cache type ("f16", "f32").</summary>
    public string KvType { get; init; } = "f16";
    /// <summary>CPU worker threads (0 = one per core).</summary>
    public int Threads { get; init; }
    /// <summary>Buffer size of the bandwidth probe.</summary>
    public long BandwidthBytes { get; init; } = 256L << 20;
    /// <summary>Decode steps timed per op for the op profile (0 = none).</summary>
    public int ProfileSteps { get; init; } = 4;
    /// <summary>External meter command, or null.</summary>
    public string? PowerCommand { get; init; }
    /// <summary>External meter file, or null.</summary>
    public string? PowerFile { get; init; }
    /// <summary>How often the external meter is read.</summary>
    public TimeSpan PowerInterval { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>The command line, for results.json.</summary>
    public string CommandLine { get; init; } = "";
}
