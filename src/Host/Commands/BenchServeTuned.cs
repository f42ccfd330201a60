using System.Globalization;
using System.Net;
using System.Text.Json;
using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Scheduling;
using Serving.Engine.Tuning;
using Serving.Host.Benchmarks;
using Serving.Host.Cli;
using Serving.Host.Plugins;
using Serving.Host.Serve;

namespace Serving.Host.Commands;

/// <summary>What <c>bench serve --compare-tuned</c> runs: one model on one device, the workload, and the untuned side's limits.</summary>
internal sealed record ServeTunedComparison(
    string ModelPath,
    string? DeviceId,
    int Threads,
    string? PluginsFolder,
    bool UseMmap,
    DataType KvCacheType,
    int UntunedMaxBatch,
    int UntunedTokenBudget,
    bool FullTune,
    int Rounds,
    ServeBenchOptions Workload);

/// <summary>
/// <c>bench serve --compare-tuned</c> (docs/tuner.md): the same concurrent workload against an in-process server with the
/// untuned defaults (serve's --max-batch and token budget, every op's default kernel) and against one with the device's
/// tuning profile (its maximum batch, token budget and kernel plan; measured first in fast mode when there is none), in
/// alternating rounds so that drift on a shared machine falls on both sides. Each round starts a fresh server, so
/// neither side finds the other's prompts in its prefix cache. Prints each run, then medians side by side.
/// </summary>
internal static class BenchServeTuned
{
    public static async Task<int> RunAsync(DeviceRegistry registry, ServeTunedComparison c, string? jsonPath, CancellationToken cancel)
    {
        string? deviceId = c.DeviceId ?? registry.DefaultDeviceId;
        if (deviceId is null) return CliErrors.Fail("no usable device (see `devices`)");
        var (plugin, descriptor, index) = registry.Find(deviceId);
        var deviceOptions = new DeviceOptions(c.Threads);
        var key = DeviceTuning.KeyFor(plugin, descriptor, deviceOptions, DeviceTuning.ShapeOf(c.ModelPath));
        var cache = ProfileCache.Default;
        var profile = DeviceTuning.Load(cache, key);
        if (profile is null or { Mode: Tuner.ScreenMode })
            profile = DeviceTuning.Measure(plugin, index, key, c.ModelPath, deviceOptions, new TuneOptions { Fast = !c.FullTune, KvCacheType = c.KvCacheType },
                c.UseMmap, cache, $"tuning {descriptor.Id} ({(c.FullTune ? "full" : "fast")}: no profile yet)");
        var (tunedBatch, tunedTokens, reason) = DeviceTuning.Limits(profile, 0);
        var plan = KernelPlan.From(profile);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"untuned: max batch {c.UntunedMaxBatch}, token budget {c.UntunedTokenBudget}, default kernels; " +
            $"tuned ({profile.Mode} profile of {profile.CreatedUtc:yyyy-MM-dd HH:mm} UTC): max batch {tunedBatch} ({reason}), token budget {tunedTokens}, " +
            $"{plan.Choices.Count} kernel choices"));

        var runs = new List<(bool Tuned, ServeBenchReport Report)>();
        for (int round = 0; round < c.Rounds; round++)
        {
            // Alternate which side goes first, so a trend in the machine's load is shared.
            foreach (bool tuned in round % 2 == 0 ? new[] { false, true } : [true, false])
            {
                int batch = tuned ? tunedBatch : c.UntunedMaxBatch;
                int tokens = tuned ? Math.Max(tunedTokens, tunedBatch) : c.UntunedTokenBudget;
                var model = new ModelOptions
                {
                    MaxBatchSequences = batch, MaxBatchTokens = tokens, UseMmap = c.UseMmap, KvCacheType = c.KvCacheType, Kernels = tuned ? plan : null,
                };
                var scheduler = new SchedulerOptions { MaxBatchSequences = batch, MaxBatchTokens = tokens, MaxQueuedRequests = Math.Max(64, c.Workload.Clients) };
                string side = tuned ? "tuned" : "untuned";
                await using var server = ProgressBar.Run($"loading {Path.GetFileName(c.ModelPath)} ({side})", ProgressUnit.Bytes, bar => ServingHost.Start(new ServingHostOptions
                {
                    ModelPath = c.ModelPath,
                    EndPoint = new IPEndPoint(IPAddress.Loopback, 0),
                    AuthToken = c.Workload.Token,
                    DeviceId = descriptor.Id,
                    Threads = c.Threads,
                    PluginsFolder = c.PluginsFolder,
                    Model = model,
                    Scheduler = scheduler,
                }, logs: null, loadProgress: bar));
                var options = c.Workload with { Host = "127.0.0.1", Port = server.EndPoint.Port };
                var report = await ProgressBar.RunAsync($"round {round + 1}/{c.Rounds} {side}: requests", ProgressUnit.Items,
                    bar => ServeBenchmark.RunAsync(options, new RequestProgressBar(bar), cancel));
                await server.StopAsync(TimeSpan.FromSeconds(1));
                Console.WriteLine($"---- round {round + 1}/{c.Rounds}, {side}: max batch {batch}, token budget {tokens} ----");
                report.WriteText(Console.Out);
                runs.Add((tuned, report));
            }
        }

        var u = runs.Where(r => !r.Tuned).Select(r => r.Report).ToList();
        var t = runs.Where(r => r.Tuned).Select(r => r.Report).ToList();
        static string F(double v) => double.IsNaN(v) ? "n/a" : v.ToString("0.0", CultureInfo.InvariantCulture);
        var table = Tables.Create(["side", "max batch", "token budget", "out tok/s", "TPOT p50 ms", "TPOT p99 ms", "TTFT p50 ms", "failed"], numeric: true);
        table.AddCells("untuned", c.UntunedMaxBatch.ToString(CultureInfo.InvariantCulture), c.UntunedTokenBudget.ToString(CultureInfo.InvariantCulture),
            F(Median(u, r => r.OutputThroughput)), F(Median(u, r => r.Tpot.P50)), F(Median(u, r => r.Tpot.P99)), F(Median(u, r => r.Ttft.P50)),
            u.Sum(r => r.Failed).ToString(CultureInfo.InvariantCulture));
        table.AddCells("tuned", tunedBatch.ToString(CultureInfo.InvariantCulture), Math.Max(tunedTokens, tunedBatch).ToString(CultureInfo.InvariantCulture),
            F(Median(t, r => r.OutputThroughput)), F(Median(t, r => r.Tpot.P50)), F(Median(t, r => r.Tpot.P99)), F(Median(t, r => r.Ttft.P50)),
            t.Sum(r => r.Failed).ToString(CultureInfo.InvariantCulture));
        Console.WriteLine("================ Tuned against untuned ================");
        Terminal.Out.WriteTable(table);
        double throughputRatio = Median(t, r => r.OutputThroughput) / Median(u, r => r.OutputThroughput);
        double tpotRatio = Median(t, r => r.Tpot.P50) / Median(u, r => r.Tpot.P50);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"medians of {c.Rounds} alternating round(s) on {descriptor.Id}, {c.Workload.Clients} clients: tuned ÷ untuned output tok/s {throughputRatio:0.00}×, TPOT p50 {tpotRatio:0.00}×"));
        if (jsonPath is not null)
        {
            using var file = File.Create(jsonPath);
            using var j = new Utf8JsonWriter(file, new JsonWriterOptions { Indented = true });
            j.WriteStartObject();
            j.WriteString("device", descriptor.Id);
            j.WriteString("model", Path.GetFileName(c.ModelPath));
            j.WriteString("profile_mode", profile.Mode);
            j.WriteNumber("untuned_max_batch", c.UntunedMaxBatch);
            j.WriteNumber("untuned_token_budget", c.UntunedTokenBudget);
            j.WriteNumber("tuned_max_batch", tunedBatch);
            j.WriteNumber("tuned_token_budget", Math.Max(tunedTokens, tunedBatch));
            j.WriteString("tuned_batch_reason", reason);
            j.WriteNumber("output_throughput_ratio", Math.Round(throughputRatio, 4));
            j.WriteNumber("tpot_p50_ratio", Math.Round(tpotRatio, 4));
            j.WriteStartArray("runs");
            foreach (var (tuned, report) in runs)
            {
                using var one = new MemoryStream();
                report.WriteJson(one);
                using var doc = JsonDocument.Parse(one.ToArray());
                j.WriteStartObject();
                j.WriteString("side", tuned ? "tuned" : "untuned");
                j.WritePropertyName("result");
                doc.RootElement.WriteTo(j);
                j.WriteEndObject();
            }
            j.WriteEndArray();
            j.WriteEndObject();
        }
        return runs.All(r => r.Report.Completed > 0) ? 0 : CliErrors.Fail("every request of a run failed");
    }

    private static double Median(List<ServeBenchReport> reports, Func<ServeBenchReport, double> value)
    {
        var sorted = reports.Select(value).Where(v => !double.IsNaN(v)).Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
