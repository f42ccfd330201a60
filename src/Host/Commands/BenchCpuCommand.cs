using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Tuning;
using Serving.Host.Benchmarks.Peer;
using Serving.Host.Benchmarks.Suite;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary>
/// <c>bench cpu</c>: Serving on given GGUF files against the machine's own limits and, when pointed at one, against
/// llama.cpp's <c>llama-bench</c> on the same files, threads and token counts (docs/bench.md). Every measurement of
/// either engine runs in a fresh child process, so each has its own peak RSS; rounds alternate the two engines file
/// by file so that drift on a shared machine hits both alike, and the table shows medians over every sample.
/// </summary>
internal static class BenchCpuCommand
{
    private const string ChildName = "cpu-child";

    public static Command Create()
    {
        var command = new Command("cpu", "Decode and prompt tokens/s, % of measured bandwidth and peak RSS per GGUF file, optionally beside llama.cpp's llama-bench");
        var models = new Option<string[]>("--model", "-m") { Description = "GGUF files (repeat the option, or list them after one -m)", AllowMultipleArgumentsPerToken = true, Required = true };
        var prompt = new Option<int>("--prompt", "-p") { Description = "Prompt tokens of the prompt test", DefaultValueFactory = _ => 128 };
        var gen = new Option<int>("--gen", "-n") { Description = "Tokens generated in the decode test", DefaultValueFactory = _ => 64 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds; each round runs every file once in each engine, alternating", DefaultValueFactory = _ => 3 };
        var reps = new Option<int>("--repetitions", "-r") { Description = "Timed repetitions of each test within one run (llama-bench's -r)", DefaultValueFactory = _ => 1 };
        var peer = new Option<string?>("--peer-llama-bench") { Description = "Path of a llama-bench binary (llama.cpp) to run on the same files: -t THREADS -mmp 0 -p PROMPT -n GEN -r REPS -o json" };
        var mmap = new Option<bool>("--mmap") { Description = "Both engines read weights from the mapped file (default: resident copies, llama-bench's -mmp 0)" };
        var json = new Option<string?>("--json") { Description = "Also write every sample and the medians as JSON to this file" };
        var bandwidthMib = new Option<int>("--bandwidth-mib") { Description = "Buffer size of the bandwidth probe, MiB", DefaultValueFactory = _ => 256 };
        var device = CommonOptions.Device();
        device.DefaultValueFactory = _ => "cpu:0";
        device.Description = "Device id (default cpu:0)";
        var threads = CommonOptions.Threads();
        foreach (var o in new Option[] { models, prompt, gen, rounds, reps, peer, mmap, json, bandwidthMib, device, threads }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            int p = parse.GetValue(prompt), n = parse.GetValue(gen), r = parse.GetValue(rounds), k = parse.GetValue(reps);
            if (p is < 1 or > 8192) return CliErrors.Fail($"--prompt {p} out of range [1, 8192]");
            if (n is < 2 or > 8192) return CliErrors.Fail($"--gen {n} out of range [2, 8192]");
            if (r is < 1 or > 100) return CliErrors.Fail($"--rounds {r} out of range [1, 100]");
            if (k is < 1 or > 100) return CliErrors.Fail($"--repetitions {k} out of range [1, 100]");
            string[] files = parse.GetValue(models)!;
            foreach (string f in files)
                if (!File.Exists(f)) return CliErrors.Fail($"model file not found: {f}");
            string? peerPath = parse.GetValue(peer);
            if (peerPath is not null && !File.Exists(peerPath)) return CliErrors.Fail($"--peer-llama-bench: no file {peerPath}");
            int t = parse.GetValue(threads) > 0 ? parse.GetValue(threads) : Environment.ProcessorCount;
            string deviceId = parse.GetValue(device)!;
            return Compare(parse, files, deviceId, t, p, n, r, k, peerPath, parse.GetValue(mmap), parse.GetValue(json), (long)parse.GetValue(bandwidthMib) << 20);
        });
        return command;
    }

    /// <summary>The hidden child: one file, one engine run, one JSON line on stdout.</summary>
    public static Command CreateChild()
    {
        var command = new Command(ChildName, "(internal) one Serving run of 'bench cpu' in its own process") { Hidden = true };
        var model = new Option<string>("--model") { Required = true };
        var prompt = new Option<int>("--prompt") { DefaultValueFactory = _ => 128 };
        var gen = new Option<int>("--gen") { DefaultValueFactory = _ => 64 };
        var reps = new Option<int>("--repetitions") { DefaultValueFactory = _ => 1 };
        var mmap = new Option<bool>("--mmap");
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        foreach (var o in new Option[] { model, prompt, gen, reps, mmap, device, threads }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            using var accelerator = CommonOptions.Registry(parse).Open(parse.GetValue(device), new(parse.GetValue(threads)));
            var result = RunServing(accelerator, parse.GetValue(model)!, parse.GetValue(prompt), parse.GetValue(gen), parse.GetValue(reps), parse.GetValue(mmap));
            Console.Out.WriteLine(JsonSerializer.Serialize(result));
            return 0;
        });
        return command;
    }

    /// <summary>What one Serving child reports.</summary>
    internal sealed record ServingRun(double[] Prompt, double[] Decode, long PeakRssBytes, long RssAnonBytes, long RssFileBytes,
        long WeightBytes, long KvBytes, string Device, string DeviceName);

    /// <summary>
    /// Loads <paramref name="path"/> as llama-bench does (one sequence, a context of prompt + gen tokens, the prompt in
    /// one chunk up to 512), warms up (a 32-token prompt, two decode steps), then times the prompt test (fixed
    /// pseudo-random ids; waits for the last token's argmax) and the decode test (greedy, from an empty context, each
    /// step's input the last step's argmax) <paramref name="repetitions"/> times each. Peak RSS is this process's VmHWM.
    /// </summary>
    internal static ServingRun RunServing(IAccelerator accelerator, string path, int prompt, int gen, int repetitions, bool mmap)
    {
        const int block = 16;
        int chunk = Math.Min(prompt, 512);
        int blocksPerSeq = (Math.Max(prompt, gen) + 1 + block - 1) / block;
        using var lm = LoadedModel.Open(path, accelerator, new ModelOptions
        {
            MaxBatchSequences = 1,
            MaxBatchTokens = chunk,
            ContextLength = blocksPerSeq * block,
            KvCacheTokens = blocksPerSeq * block,
            KvBlockSize = block,
            UseMmap = mmap,
        });
        var model = lm.Model;
        var runner = new BenchSuite.Runner(model, chunk, blocksPerSeq);
        runner.Prompt(Math.Min(prompt, 32));
        runner.Decode(1, 2);
        var pp = new double[repetitions];
        var tg = new double[repetitions];
        for (int i = 0; i < repetitions; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            runner.Prompt(prompt);
            pp[i] = prompt / Stopwatch.GetElapsedTime(t0).TotalSeconds;
            t0 = Stopwatch.GetTimestamp();
            runner.Decode(1, gen);
            tg[i] = gen / Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        long kv = (long)model.KvBlockCount * model.KvBlockSize * model.Config.KvBytesPerToken(model.KvCacheType);
        const string status = "/proc/self/status";
        return new ServingRun(pp, tg, ChildProcess.ReadStatusKiB(status, "VmHWM:") * 1024, ChildProcess.ReadStatusKiB(status, "RssAnon:") * 1024,
            ChildProcess.ReadStatusKiB(status, "RssFile:") * 1024, model.WeightBytes, kv, accelerator.Descriptor.Id, accelerator.Descriptor.Name);
    }

    /// <summary>How to start this host again as a child: the apphost, or dotnet with the host's assembly.</summary>
    private static (string File, string[] Prefix) Self()
    {
        string process = Environment.ProcessPath ?? throw new InvalidOperationException("the host's own path is unknown");
        string assembly = Assembly.GetEntryAssembly()?.Location ?? "";
        return Path.GetFileNameWithoutExtension(process).Equals("dotnet", StringComparison.OrdinalIgnoreCase) && assembly.Length > 0
            ? (process, [assembly])
            : (process, []);
    }

    private sealed class FileResult(string path)
    {
        public string Path { get; } = path;
        public List<ServingRun> Ours { get; } = [];
        public List<PeerSample> Peer { get; } = [];
        public List<string> Errors { get; } = [];
    }

    private static int Compare(ParseResult parse, string[] files, string deviceId, int threads, int prompt, int gen, int rounds, int reps,
        string? peer, bool mmap, string? jsonPath, long bandwidthBytes)
    {
        // The machine's bandwidth once, in this process (its memory is not any child's).
        string deviceName;
        double bandwidth;
        using (var accelerator = CommonOptions.Registry(parse).Open(deviceId, new(threads)))
        {
            var bw = BandwidthProbe.Measure(accelerator, bandwidthBytes);
            // The roof is the best sample (as in the suite): on a busy machine a median would sit below what runs reach.
            bandwidth = bw.Samples.Max();
            // The name, the runtime and SIMD tier in use, and the ISA flags (the fingerprint's last part on the Cpu backend).
            var d = accelerator.Descriptor;
            deviceName = $"{d.Name} ({d.DriverVersion}; {d.Fingerprint.Split('|')[^1]})";
        }
        Console.Error.WriteLine($"{deviceId}: {deviceName}; {threads} threads; bandwidth {bandwidth / 1e9:0.0} GB/s (best Copy sample of {bandwidthBytes >> 20} MiB buffers)");

        var (self, prefix) = Self();
        var results = files.Select(f => new FileResult(Path.GetFullPath(f))).ToArray();
        var timeout = TimeSpan.FromMinutes(30);
        for (int round = 1; round <= rounds; round++)
        {
            foreach (var f in results)
            {
                string name = System.IO.Path.GetFileName(f.Path);
                Console.Error.WriteLine($"round {round}/{rounds}: {name}: Serving");
                string[] args = [.. prefix, "bench", ChildName, "--model", f.Path, "--prompt", Str(prompt), "--gen", Str(gen), "--repetitions", Str(reps),
                    "--device", deviceId, "--threads", Str(threads), .. mmap ? new[] { "--mmap" } : [],
                    .. parse.GetValue(CommonOptions.Plugins) is { } plugins ? new[] { "--plugins", plugins } : []];
                try
                {
                    var (code, stdout, stderr, _) = ChildProcess.Run(self, args, timeout);
                    if (code != 0)
                        throw new InvalidOperationException($"exit code {code}: {stderr.Trim()}");
                    string line = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last(l => l.StartsWith('{'));
                    f.Ours.Add(JsonSerializer.Deserialize<ServingRun>(line) ?? throw new InvalidOperationException("no result"));
                }
                catch (Exception e) when (e is InvalidOperationException or TimeoutException or JsonException)
                {
                    f.Errors.Add($"Serving round {round}: {e.Message}");
                }
                if (peer is null)
                    continue;
                Console.Error.WriteLine($"round {round}/{rounds}: {name}: llama-bench");
                try
                {
                    f.Peer.Add(LlamaBench.Run(peer, f.Path, threads, mmap, prompt, gen, reps, timeout));
                }
                catch (Exception e) when (e is InvalidOperationException or TimeoutException or FormatException or JsonException or System.ComponentModel.Win32Exception)
                {
                    f.Errors.Add($"llama-bench round {round}: {e.Message}");
                }
            }
        }
        Report(results, deviceId, deviceName, threads, bandwidth, prompt, gen, rounds, reps, peer, mmap, jsonPath);
        return results.All(f => f.Errors.Count == 0) ? 0 : 1;
    }

    private static string Str(int v) => v.ToString(CultureInfo.InvariantCulture);

    private static void Report(FileResult[] results, string deviceId, string deviceName, int threads, double bandwidth, int prompt, int gen,
        int rounds, int reps, string? peer, bool mmap, string? jsonPath)
    {
        bool withPeer = peer is not null;
        string[] headers = withPeer
            ? ["model", "weights", "weights + KV", "decode tok/s", "llama.cpp", "ratio", "of bandwidth", "llama.cpp", $"prompt tok/s (pp{prompt})", "llama.cpp", "ratio", "peak RSS", "llama.cpp"]
            : ["model", "weights", "weights + KV", "decode tok/s", "of bandwidth", $"prompt tok/s (pp{prompt})", "peak RSS", "RSS − weights − KV"];
        var table = Tables.Create(headers, numeric: true);
        var rows = new List<object>();
        foreach (var f in results)
        {
            string name = Path.GetFileName(f.Path);
            if (f.Ours.Count == 0)
            {
                table.AddCells([name, .. Enumerable.Repeat("failed", headers.Length - 1)]);
                rows.Add(new { file = f.Path, errors = f.Errors });
                continue;
            }
            long weights = f.Ours[0].WeightBytes, kv = f.Ours[0].KvBytes;
            double ourTg = Median.Of(f.Ours.SelectMany(o => o.Decode)), ourPp = Median.Of(f.Ours.SelectMany(o => o.Prompt));
            double ourRss = Median.Of(f.Ours.Select(o => (double)o.PeakRssBytes));
            double floor = bandwidth / weights; // tokens/s if every step streamed the weights once at the measured bandwidth
            double peerTg = Median.Of(f.Peer.SelectMany(o => o.DecodeTokensPerSecond)), peerPp = Median.Of(f.Peer.SelectMany(o => o.PromptTokensPerSecond));
            double peerRss = Median.Of(f.Peer.Select(o => (double)o.PeakRssBytes));
            string Rate(double v) => double.IsNaN(v) ? "—" : v.ToString("0.0", CultureInfo.InvariantCulture);
            string Ratio(double a, double b) => double.IsNaN(a) || double.IsNaN(b) || b <= 0 ? "—" : (a / b).ToString("0.00", CultureInfo.InvariantCulture);
            string Of(double v) => double.IsNaN(v) ? "—" : $"{v / floor:P0}";
            string Mib(double v) => double.IsNaN(v) || v <= 0 ? "—" : $"{v / (1 << 20):0} MiB";
            if (withPeer)
                table.AddCells(name, Mib(weights), Mib(weights + kv), Rate(ourTg), Rate(peerTg), Ratio(ourTg, peerTg), Of(ourTg), Of(peerTg),
                    Rate(ourPp), Rate(peerPp), Ratio(ourPp, peerPp), Mib(ourRss), Mib(peerRss));
            else
                table.AddCells(name, Mib(weights), Mib(weights + kv), Rate(ourTg), Of(ourTg), Rate(ourPp), Mib(ourRss), Mib(ourRss - weights - kv));
            rows.Add(new
            {
                file = f.Path,
                weightBytes = weights,
                kvBytes = kv,
                floorTokensPerSecond = floor,
                serving = new
                {
                    decodeTokensPerSecond = ourTg,
                    promptTokensPerSecond = ourPp,
                    fractionOfBandwidth = ourTg / floor,
                    peakRssBytes = ourRss,
                    runs = f.Ours,
                },
                llamaBench = withPeer
                    ? new
                    {
                        decodeTokensPerSecond = peerTg,
                        promptTokensPerSecond = peerPp,
                        fractionOfBandwidth = peerTg / floor,
                        peakRssBytes = peerRss,
                        runs = f.Peer,
                    }
                    : null,
                errors = f.Errors,
            });
        }
        Console.Out.WriteLine($"{deviceId}: {deviceName}; {threads} threads; bandwidth {bandwidth / 1e9:0.0} GB/s; pp{prompt}, tg{gen}; " +
                              $"{rounds} round(s) × {reps} repetition(s), medians; weights {(mmap ? "mapped" : "resident (no mmap)")}" +
                              (withPeer ? $"; peer {peer}" : ""));
        Terminal.Out.WriteTable(table);
        foreach (var e in results.SelectMany(f => f.Errors))
            Console.Error.WriteLine($"error: {e}");
        if (jsonPath is not null)
        {
            var document = new
            {
                format = "serving-bench-cpu/1",
                device = deviceId,
                deviceName,
                threads,
                bandwidthBytesPerSecond = bandwidth,
                prompt,
                gen,
                rounds,
                repetitions = reps,
                mmap,
                peer,
                models = rows,
            };
            File.WriteAllText(jsonPath, JsonSerializer.Serialize(document, new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
        }
    }
}
