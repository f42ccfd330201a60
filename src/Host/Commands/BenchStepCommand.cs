using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Serving.Engine.Models;
using Serving.Engine.Tuning;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary>
/// <c>bench step</c>: the cost of one decode step at growing batch (docs/tuning.md), measured on the model
/// directly (no scheduler, no sampling): each of B sequences adds one token per step. Shows where the step stops
/// being weight-bandwidth bound — the batch beyond which batching no longer buys throughput at equal latency.
/// </summary>
internal static class BenchStepCommand
{
    public static Command Create()
    {
        var command = new Command("step", "Time one decode step at growing batch sizes against the bandwidth floor");
        var model = ModelOption.Create();
        var batches = new Option<string>("--batch", "-b") { Description = "Comma-separated batch sizes", DefaultValueFactory = _ => "1,2,4,8,16" };
        var position = new Option<int>("--position") { Description = "Context position of the decoded tokens", DefaultValueFactory = _ => 64 };
        var repeats = new Option<int>("--repeats") { Description = "Timed steps per batch size (median reported)", DefaultValueFactory = _ => 20 };
        var json = new Option<string?>("--json") { Description = "Also write the results as JSON to this file" };
        var mmap = new Option<bool>("--mmap") { Description = "Serve weights from the mapped file instead of resident memory" };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var kvType = CommonOptions.KvType();
        foreach (var o in new Option[] { model, batches, position, repeats, json, mmap, device, threads, kvType }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            int[] sizes;
            try
            {
                sizes = parse.GetValue(batches)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
            }
            catch (FormatException)
            {
                return CliErrors.Fail($"--batch '{parse.GetValue(batches)}' is not a comma-separated list of integers");
            }
            if (sizes.Length == 0 || sizes.Any(b => b is < 1 or > 1024)) return CliErrors.Fail("--batch sizes must be in [1, 1024]");
            int n = parse.GetValue(repeats), pos = parse.GetValue(position);
            if (n is < 1 or > 10_000) return CliErrors.Fail($"--repeats {n} out of range [1, 10000]");
            if (pos is < 0 or > 65_536) return CliErrors.Fail($"--position {pos} out of range [0, 65536]");

            string path = ModelOption.Resolve(parse.GetValue(model));
            using var accelerator = CommonOptions.Registry(parse).Open(parse.GetValue(device), new(parse.GetValue(threads)));
            var bw = BandwidthProbe.Measure(accelerator);
            int maxBatch = sizes.Max();
            var lm = ProgressBar.Run($"loading {Path.GetFileName(path)}", ProgressUnit.Bytes, bar => LoadedModel.Open(path, accelerator, new ModelOptions
            {
                MaxBatchSequences = maxBatch,
                MaxBatchTokens = Math.Max(maxBatch, 16),
                ContextLength = Math.Max(pos + 16, 64),
                KvCacheTokens = maxBatch * Math.Max(pos + 16, 64),
                UseMmap = parse.GetValue(mmap),
                KvCacheType = CommonOptions.KvCacheType(parse, kvType),
            }, bar));
            using (lm)
            {
                var m = lm.Model;
                double floorMs = m.WeightBytes / bw.BytesPerSecond * 1000;
                var batch = new StepBatch(m.MaxBatchTokens, maxBatch, m.MaxBlocksPerSequence);
                var logits = new float[maxBatch * m.VocabSize];
                var rows = new List<object>();
                var table = Tables.Create(["batch", "step ms", "tokens/s", "per token ms", "vs batch 1", "floor ms"], numeric: true);
                double? single = null;
                foreach (int b in sizes)
                {
                    // Each sequence owns a contiguous run of blocks; its token sits at the same position.
                    int blocksPer = (pos + m.KvBlockSize) / m.KvBlockSize;
                    void Step()
                    {
                        batch.Clear();
                        for (int s = 0; s < b; s++)
                        {
                            batch.SequenceCount++;
                            for (int k = 0; k < blocksPer; k++) batch.BlockTables[s * batch.MaxBlocksPerSequence + k] = s * blocksPer + k;
                            int slot = (s * blocksPer + pos / m.KvBlockSize) * m.KvBlockSize + pos % m.KvBlockSize;
                            batch.AddToken(1 + s, pos, s, slot, wantLogits: true);
                        }
                        m.Forward(batch, logits);
                    }
                    for (int i = 0; i < 3; i++) Step();
                    var times = new double[n];
                    for (int i = 0; i < n; i++)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        Step();
                        times[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                    }
                    Array.Sort(times);
                    double ms = times[n / 2];
                    single ??= ms;
                    table.AddCells(b.ToString(), ms.ToString("0.000"), (b / ms * 1000).ToString("0.0"), (ms / b).ToString("0.000"),
                        $"{b / ms / (1 / single.Value):0.00}x tok/s, {ms / single.Value:0.00}x latency", floorMs.ToString("0.000"));
                    rows.Add(new { batch = b, stepMs = Math.Round(ms, 4), tokensPerSecond = Math.Round(b / ms * 1000, 2), minMs = Math.Round(times[0], 4) });
                }
                Console.WriteLine($"{lm.Name} on {accelerator.Descriptor.Id}: {Units.Bytes(m.WeightBytes)} weights, {bw.GBps:0.0} GB/s → floor {floorMs:0.000} ms per step (any batch, until compute takes over)");
                Terminal.Out.WriteTable(table);
                if (parse.GetValue(json) is { } jsonPath)
                    File.WriteAllText(jsonPath, JsonSerializer.Serialize(new { model = lm.Name, device = accelerator.Descriptor.Id, weightBytes = m.WeightBytes, bandwidthGBps = bw.GBps, floorMs, position = pos, steps = rows },
                        new JsonSerializerOptions { WriteIndented = true }));
            }
            return 0;
        });
        return command;
    }
}
