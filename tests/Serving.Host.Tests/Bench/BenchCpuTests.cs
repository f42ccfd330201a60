using System.Diagnostics;
using System.Text.Json;
using Serving.Abstractions;
using Serving.Host.Benchmarks.Peer;
using Serving.Host.Tests.Models;

namespace Serving.Host.Tests.Bench;

/// <summary>
/// <c>bench cpu</c>: llama-bench's JSON read right, and the whole command run as a user runs it, with a stand-in for
/// llama-bench (a shell script that records its arguments and prints fixed figures), so the rounds, the child
/// processes, the medians and the ratios are checked without llama.cpp.
/// </summary>
[Collection("tiny")]
[Trait("Category", "Slow")] // the CLI and its children run the tiny model on cpu:0
public sealed class BenchCpuTests(TinyModelFixture fixture) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("serving-benchcpu-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // What llama-bench -o json prints (fields trimmed to a realistic subset; the order of tests is pp then tg).
    private const string LlamaBenchJson = """
        [
          {
            "build_commit": "34af94cd", "build_number": 1, "cpu_info": "AMD EPYC", "model_filename": "m.gguf", "model_type": "llama 1B Q4_0",
            "model_size": 584056832, "model_n_params": 1100048384, "n_threads": 2, "use_mmap": false, "n_prompt": 128, "n_gen": 0,
            "avg_ns": 2000000000, "stddev_ns": 10000000, "avg_ts": 64.0, "stddev_ts": 0.3, "samples_ns": [ 2000000000, 2000000000 ], "samples_ts": [ 63.0, 65.0 ]
          },
          {
            "build_commit": "34af94cd", "build_number": 1, "n_threads": 2, "use_mmap": false, "n_prompt": 0, "n_gen": 64,
            "avg_ns": 2300000000, "stddev_ns": 10000000, "avg_ts": 28.0, "stddev_ts": 0.1, "samples_ns": [ 2300000000 ], "samples_ts": [ 28.0 ]
          }
        ]
        """;

    [Fact]
    public void LlamaBenchJson_GivesPromptAndDecodeSamples()
    {
        var (pp, tg) = LlamaBench.Parse("some log line on stdout\n" + LlamaBenchJson);
        Assert.Equal([63.0, 65.0], pp);
        Assert.Equal([28.0], tg);
        Assert.Equal(64.0, Median.Of(pp));
        Assert.Equal(["-m", "f.gguf", "-t", "2", "-mmp", "0", "-p", "128", "-n", "64", "-r", "1", "-o", "json"], LlamaBench.Arguments("f.gguf", 2, false, 128, 64, 1));
    }

    [Fact]
    public void LlamaBenchJson_WithoutADecodeTest_IsRefusedSayingSo()
    {
        var e = Assert.Throws<FormatException>(() => LlamaBench.Parse("""[{"n_prompt": 128, "n_gen": 0, "avg_ts": 64.0}]"""));
        Assert.Contains("no decode test", e.Message);
        Assert.Throws<FormatException>(() => LlamaBench.Parse("error: unknown argument"));
    }

    [SkippableFact]
    public async Task TheCommand_AlternatesBothEngines_AndReportsMediansRatiosAndPeakRss()
    {
        Skip.If(!OperatingSystem.IsLinux(), "the stand-in llama-bench is a shell script, and peak RSS comes from /proc");
        string model = fixture.PathOf(DataType.Q8_0);
        string argsFile = Path.Combine(_dir, "args.txt");
        string peer = Path.Combine(_dir, "llama-bench");
        // Alive long enough for its status to be read; prints llama-bench's JSON after a line of noise.
        File.WriteAllText(peer, $"#!/bin/sh\necho \"$@\" >> '{argsFile}'\nsleep 1\necho 'build: 34af94cd (1)'\ncat <<'EOF'\n{LlamaBenchJson}\nEOF\n");
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(peer, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string json = Path.Combine(_dir, "out.json");
        var psi = new ProcessStartInfo("dotnet");
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "Serving.Host.dll"), "bench", "cpu", "-m", model, "--rounds", "2",
                     "-p", "8", "-n", "4", "--threads", "2", "--bandwidth-mib", "8", "--peer-llama-bench", peer, "--json", json,
                     "--plugins", Path.Combine(AppContext.BaseDirectory, "plugins") })
            psi.ArgumentList.Add(a);
        string stdout = await Interop.ChildProcess.RunAsync(psi, TimeSpan.FromMinutes(4));

        // Two rounds, llama-bench once per round with the same file, threads and token counts.
        string[] calls = File.ReadAllLines(argsFile);
        Assert.Equal(2, calls.Length);
        Assert.All(calls, c => Assert.Equal($"-m {model} -t 2 -mmp 0 -p 8 -n 4 -r 1 -o json", c));
        Assert.Contains("tiny-q8_0.gguf", stdout);
        Assert.Contains("28.0", stdout); // the peer's decode median
        Assert.Contains("64.0", stdout); // the peer's prompt median

        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var m = doc.RootElement.GetProperty("models")[0];
        Assert.Equal(0, m.GetProperty("errors").GetArrayLength());
        long weights = m.GetProperty("weightBytes").GetInt64();
        Assert.True(weights > 10 << 20, $"weight bytes {weights}");
        Assert.True(m.GetProperty("kvBytes").GetInt64() > 0);
        var ours = m.GetProperty("serving");
        Assert.Equal(2, ours.GetProperty("runs").GetArrayLength());
        Assert.True(ours.GetProperty("decodeTokensPerSecond").GetDouble() > 0);
        Assert.True(ours.GetProperty("promptTokensPerSecond").GetDouble() > 0);
        // Each run in its own process: its peak RSS holds at least the resident copy of the weights.
        Assert.True(ours.GetProperty("peakRssBytes").GetDouble() > weights, $"peak RSS {ours.GetProperty("peakRssBytes")} for {weights} bytes of weights");
        var theirs = m.GetProperty("llamaBench");
        Assert.Equal(28.0, theirs.GetProperty("decodeTokensPerSecond").GetDouble());
        Assert.Equal(64.0, theirs.GetProperty("promptTokensPerSecond").GetDouble());
        Assert.True(theirs.GetProperty("peakRssBytes").GetDouble() > 0); // the stand-in's own VmHWM, read from /proc
        double floor = m.GetProperty("floorTokensPerSecond").GetDouble();
        Assert.Equal(28.0 / floor, theirs.GetProperty("fractionOfBandwidth").GetDouble(), 6);
    }
}
