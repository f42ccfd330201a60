using System.CommandLine;
using System.Text.Json;
using Serving.Abstractions;
using Serving.Engine.Tuning;
using Serving.Host.Cli;
using Serving.Host.Plugins;

namespace Serving.Host.Commands;

/// <summary>
/// <c>tune</c>: measures a device (or all) for a model (docs/tuner.md) and stores the profile serve and generate use:
/// bandwidth and peak matmul rate, every variant of every op at the model's shapes and batch buckets (validated,
/// then timed), the decode step-time curve with its knee beside the roofline's, and the chosen batch limits.
/// </summary>
internal static class TuneCommand
{
    public static Command Create()
    {
        var command = new Command("tune", "Measure a device for a model: kernel variants, batch limits; cached for serve and generate");
        var model = ModelOption.Create();
        var device = new Option<string?>("--device", "-d") { Description = "Device id (backend:index), or all; default: the best-scored device" };
        var tpot = DeviceTuning.TpotMs("Per-token latency target in ms the batch limit must keep (0 = none: grow until throughput plateaus)");
        var force = new Option<bool>("--force") { Description = "Measure again even when a cached profile exists" };
        var json = new Option<string?>("--json") { Description = "Also write every profile (every timing) as JSON to this file" };
        var fast = new Option<bool>("--fast") { Description = "Fast mode: only ops with a choice of variants, batch buckets 1–16, short budgets" };
        var threads = CommonOptions.Threads();
        var noMmap = CommonOptions.NoMmap();
        var kvType = CommonOptions.KvType();
        foreach (var o in new Option[] { model, device, tpot, force, json, fast, threads, noMmap, kvType }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            double target = parse.GetValue(tpot);
            if (!(target >= 0) || double.IsInfinity(target)) return CliErrors.Fail($"--tpot-ms {target} must be ≥ 0");
            string path = ModelOption.Resolve(parse.GetValue(model));
            var registry = CommonOptions.Registry(parse);
            var options = new DeviceOptions(parse.GetValue(threads));
            var tune = new TuneOptions { Fast = parse.GetValue(fast), TpotTargetMs = target, KvCacheType = CommonOptions.KvCacheType(parse, kvType) };
            var shape = DeviceTuning.ShapeOf(path);
            var cache = ProfileCache.Default;

            var targets = new List<(PluginEntry Plugin, DeviceDescriptor Device, int Index)>();
            string? id = parse.GetValue(device);
            if (string.Equals(id, "all", StringComparison.OrdinalIgnoreCase))
            {
                foreach (var p in registry.Plugins.Where(p => p.Usable))
                    for (int i = 0; i < p.Probe!.Devices.Count; i++) targets.Add((p, p.Probe.Devices[i], i));
                if (targets.Count == 0) throw new DeviceNotFoundException("no usable device");
            }
            else
            {
                targets.Add(registry.Find(id ?? registry.DefaultDeviceId ?? throw new DeviceNotFoundException("no usable device")));
            }

            Console.WriteLine($"model {Path.GetFileName(path)}: {shape.Key}");
            Console.WriteLine($"profile cache: {cache.Folder}");
            var profiles = new List<TuningProfile>();
            var candidates = new List<DeviceCandidate>();
            foreach (var (plugin, descriptor, index) in targets)
            {
                var key = DeviceTuning.KeyFor(plugin, descriptor, options, shape);
                TuningProfile? profile = null;
                if (!parse.GetValue(force))
                {
                    profile = DeviceTuning.Load(cache, key);
                    // A screening or a fast profile does not answer a full tune, nor one made for another TPOT target.
                    if (profile is not null && (profile.Mode == Tuner.ScreenMode || (profile.Mode == "fast" && !tune.Fast) || profile.Limits.TpotTargetMs != target))
                        profile = null;
                    else if (profile is not null) Console.Error.WriteLine($"{descriptor.Id}: cached profile {cache.PathFor(key)} (--force measures again)");
                }
                try
                {
                    profile ??= DeviceTuning.Measure(plugin, index, key, path, options, tune, !parse.GetValue(noMmap), cache,
                        $"tuning {descriptor.Id} ({(tune.Fast ? "fast" : "full")})");
                }
                catch (Exception e) when (e is AcceleratorException or Engine.Models.ModelLoadException or NotSupportedException && targets.Count > 1)
                {
                    Console.Error.WriteLine($"{descriptor.Id}: could not be tuned: {e.Message}");
                    candidates.Add(new DeviceCandidate(descriptor.Id, null, $"could not be tuned ({e.Message})"));
                    continue;
                }
                profiles.Add(profile);
                candidates.Add(new DeviceCandidate(descriptor.Id, profile));
                Print(profile, shape);
            }
            if (targets.Count > 1 && DeviceChooser.Choose(candidates, out string reason) is not null)
                Console.WriteLine($"--device auto would choose: {reason}");
            if (parse.GetValue(json) is { } jsonPath)
                File.WriteAllText(jsonPath, JsonSerializer.Serialize(new { model = path, shape = shape.Key, profiles }, ProfileCache.Json));
            return profiles.Count > 0 ? 0 : 1;
        });
        return command;
    }

    /// <summary>The profile as tables: device, one table per op, the step curve against the roofline, the limits.</summary>
    private static void Print(TuningProfile p, Engine.Tuning.ModelShape shape)
    {
        double bw = p.BandwidthBytesPerSecond, peak = p.PeakFlopsPerSecond;
        Console.WriteLine();
        Console.WriteLine($"{p.Key.DeviceId} ({p.Key.DeviceName}), {p.Mode} tuning in {p.Seconds:0.0} s: bandwidth {bw / 1e9:0.0} GB/s (Copy), " +
                          $"peak matmul {peak / 1e9:0.0} GFLOP/s ({p.PeakCase})");
        foreach (var op in p.Ops)
        {
            Console.WriteLine();
            Console.WriteLine($"{op.Title}: {op.Role}, {op.PerStep} per step{(op.Note.Length > 0 ? $" — {op.Note}" : "")}");
            var table = Tables.Create(["variant", "T", "µs", "±", "GB/s", "% of bw", "GFLOP/s", "chosen"], numeric: true);
            foreach (var t in op.Timings.OrderBy(t => t.Batch).ThenBy(t => t.Time.MedianUs))
            {
                bool chosen = op.Chosen.Any(c => c.Batch == t.Batch && c.Variant == t.Variant);
                table.AddCells(t.Variant, t.Batch.ToString(), t.Time.MedianUs.ToString("0.0"), $"{t.Time.Spread * 50:0}%", t.GBps.ToString("0.0"),
                    bw > 0 ? $"{t.GBps * 1e9 / bw * 100:0}%" : "", t.Flops > 0 ? t.GFlops.ToString("0.0") : "", chosen ? "✓" : "");
            }
            foreach (var c in op.Checks.Where(c => !c.Usable))
                table.AddCells(c.Variant, "", "", "", "", "", "", c.Status);
            Terminal.Out.WriteTable(table);
        }

        Console.WriteLine();
        double floorMs = p.WeightBytesPerStep / bw * 1000;
        Console.WriteLine($"decode step vs batch (position {p.DecodePosition}; floor = {Units.Bytes(p.WeightBytesPerStep)} of weights ÷ bandwidth = {floorMs:0.00} ms; " +
                          "roofline = max(floor, 2 FLOP per weight per row ÷ peak)):");
        var curve = Tables.Create(["batch", "step ms", "±", "tokens/s", "vs batch 1", "roofline ms"], numeric: true);
        double macs = shape.MultiplyAddsPerToken;
        foreach (var s in p.DecodeCurve)
        {
            double roofline = Math.Max(floorMs, peak > 0 ? 2 * macs * s.Batch / peak * 1000 : 0);
            curve.AddCells(s.Batch.ToString(), s.Ms.ToString("0.00"), $"{s.Time.Spread * 50:0}%", s.TokensPerSecond.ToString("0.0"),
                $"{s.TokensPerSecond / p.DecodeCurve[0].TokensPerSecond:0.00}x", roofline.ToString("0.00"));
        }
        Terminal.Out.WriteTable(curve);
        var l = p.Limits;
        Console.WriteLine($"knee: measured {(l.MeasuredKnee is { } k ? $"≈ {k:0.0}" : $"beyond batch {p.DecodeCurve[^1].Batch} (still near batch 1's time)")}, " +
                          $"roofline predicts ≈ {l.RooflineKnee:0.0} (peak ÷ bandwidth × {shape.BytesPerWeight:0.###} bytes per weight ÷ 2)");
        if (p.PrefillCurve.Count > 0)
            Console.WriteLine($"prefill: {string.Join(", ", p.PrefillCurve.Select(s => $"{s.Batch} tokens {s.Ms:0.0} ms ({s.TokensPerSecond:0} tok/s)"))}");
        Console.WriteLine($"chosen: max batch {l.MaxBatch} — {l.BatchReason}");
        Console.WriteLine($"        token budget {l.TokenBudget} — {l.TokenReason}");
        Console.WriteLine($"predicted single-sequence decode: {p.PredictedDecodeTokensPerSecond:0.0} tokens/s");
    }
}
