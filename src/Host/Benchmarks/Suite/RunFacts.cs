using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Models;

namespace Serving.Host.Benchmarks.Suite;

/// <summary>Provenance and work counts for results.json: the machine, the build, the model and what a token costs.</summary>
internal static class RunFacts
{
    /// <summary>The machine.</summary>
    public static HostFacts Host()
    {
        string? kernel = null;
        try
        {
            if (File.Exists("/proc/sys/kernel/osrelease")) kernel = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        }
        catch (IOException)
        {
        }
        string version = typeof(RunFacts).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";
        return new HostFacts(Environment.MachineName, RuntimeInformation.OSDescription, kernel, Environment.ProcessorCount,
            RuntimeInformation.FrameworkDescription, version.Split('+')[0]);
    }

    /// <summary>The commit the host was built from (its informational version carries it after '+'), and whether the
    /// source tree it was built in has local changes now (git run beside the binary; null when git cannot tell).</summary>
    public static GitFacts? Git()
    {
        string? version = typeof(RunFacts).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        string? commit = version?.Split('+') is [_, var c, ..] && c.Length >= 7 ? c : null;
        bool? dirty = null;
        string? head = RunGit("rev-parse HEAD");
        commit ??= head;
        if (head is not null && commit == head)
            dirty = RunGit("status --porcelain --untracked-files=no") is { } status ? status.Length > 0 : null;
        return commit is null ? null : new GitFacts(commit, dirty);
    }

    private static string? RunGit(string arguments)
    {
        try
        {
            var info = new ProcessStartInfo("git", $"-C \"{AppContext.BaseDirectory}\" {arguments}")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using var p = Process.Start(info);
            if (p is null) return null;
            var output = p.StandardOutput.ReadToEndAsync();
            _ = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromSeconds(5)))
            {
                p.Kill(entireProcessTree: true);
                return null;
            }
            return p.ExitCode == 0 ? output.GetAwaiter().GetResult().Trim() : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no git
        }
    }

    /// <summary>The loaded model's facts.</summary>
    public static ModelFacts Model(LoadedModel lm, string? shape)
    {
        var c = lm.Model.Config;
        var type = lm.File.FindTensor("blk.0.attn_q.weight")?.Type ?? DataType.F32;
        return Facts(lm.Name, lm.Path, shape, type, lm.Model.WeightBytes, c);
    }

    /// <summary>The facts of a model file no device could load (the header only).</summary>
    public static ModelFacts ModelFromFile(string path, string? shape)
    {
        try
        {
            using var file = GgufFile.Open(path);
            var c = LlamaConfig.FromGguf(file);
            var type = file.FindTensor("blk.0.attn_q.weight")?.Type ?? DataType.F32;
            long bytes = file.Tensors.Where(t => t.Dims.Length == 2).Sum(t => t.ByteSize);
            return Facts(Path.GetFileNameWithoutExtension(path), Path.GetFullPath(path), shape, type, bytes, c);
        }
        catch (Exception e) when (e is GgufFormatException or ModelLoadException or IOException)
        {
            return new ModelFacts(Path.GetFileName(path), Path.GetFullPath(path), shape, "?", 0, 0, 0, 0, 0, 0, 0, 0, 0);
        }
    }

    private static ModelFacts Facts(string name, string path, string? shape, DataType type, long bytes, LlamaConfig c)
    {
        long q = (long)c.Heads * c.HeadDim, kv = (long)c.KvHeads * c.HeadDim;
        long perLayer = c.Dim * q + 2 * c.Dim * kv + q * c.Dim + 3L * c.Dim * c.FfnDim;
        long parameters = c.Layers * perLayer + (long)c.VocabSize * c.Dim;
        return new ModelFacts(name, path, shape, type.Name(), bytes, parameters, c.Layers, c.Dim, c.Heads, c.KvHeads, c.HeadDim, c.FfnDim, c.VocabSize);
    }

    private static double LayerFlopsPerToken(ModelFacts m) => 2.0 * (m.MatMulParameters - (long)m.Vocab * m.Dim);

    private static double HeadFlopsPerRow(ModelFacts m) => 2.0 * m.Vocab * m.Dim;

    /// <summary>Attention FLOPs of one token at <paramref name="position"/> (it attends position + 1 keys): QKᵀ and AV in every layer.</summary>
    private static double AttentionFlops(ModelFacts m, long position) => 4.0 * (position + 1) * m.Heads * m.HeadDim * m.Layers;

    /// <summary>FLOPs of a prefill of <paramref name="tokens"/> tokens (the output head on the last one only).</summary>
    public static double PromptFlops(ModelFacts m, int tokens)
    {
        double attention = 0;
        for (long p = 0; p < tokens; p++) attention += AttentionFlops(m, p);
        return tokens * LayerFlopsPerToken(m) + HeadFlopsPerRow(m) + attention;
    }

    /// <summary>FLOPs of <paramref name="steps"/> decode steps of <paramref name="batch"/> sequences from position 0 (the head on every row).</summary>
    public static double DecodeFlops(ModelFacts m, int batch, int steps)
    {
        double attention = 0;
        for (long p = 0; p < steps; p++) attention += AttentionFlops(m, p);
        return (double)batch * steps * (LayerFlopsPerToken(m) + HeadFlopsPerRow(m)) + batch * attention;
    }
}
