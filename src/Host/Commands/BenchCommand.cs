using System.CommandLine;
using System.Text.Json;
using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using Serving.Engine.Tuning;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary>
/// <c>bench</c>: measurements users compare across devices. Plain <c>bench</c> (or <c>bench run</c>) runs the suite on
/// every device (<see cref="BenchRunCommand"/>), <c>bench compare</c> compares two of its results. <c>bench bandwidth</c>
/// measures memory bandwidth with the device's Copy op; <c>bench decode</c> measures single-stream decode speed against
/// its floor (weight bytes ÷ measured bandwidth: every decoded token must stream all weights once).
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var bench = new Command("bench", "Benchmark suite over devices (plain 'bench' = 'bench run'), single measurements: bandwidth, decode, step, serve, tuned, and cpu (against llama-bench)");
        new BenchRunCommand().Attach(bench);
        bench.Subcommands.Add(BenchRunCommand.CreateRun());
        bench.Subcommands.Add(BenchCompareCommand.Create());
        bench.Subcommands.Add(Bandwidth());
        bench.Subcommands.Add(Decode());
        bench.Subcommands.Add(BenchServeCommand.Create());
        bench.Subcommands.Add(BenchStepCommand.Create());
        bench.Subcommands.Add(BenchTunedCommand.Create());
        bench.Subcommands.Add(BenchCpuCommand.Create());
        bench.Subcommands.Add(BenchCpuCommand.CreateChild());
        return bench;
    }

    private static Command Bandwidth()
    {
        var command = new Command("bandwidth", "Measure device memory bandwidth with the Copy op");
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var size = new Option<int>("--mib") { Description = "Size of each buffer in MiB", DefaultValueFactory = _ => 512 };
        command.Options.Add(device);
        command.Options.Add(threads);
        command.Options.Add(size);
        command.SetAction(parse =>
        {
            using var accelerator = CommonOptions.Registry(parse).Open(parse.GetValue(device), new(parse.GetValue(threads)));
            var r = BandwidthProbe.Measure(accelerator, (long)parse.GetValue(size) << 20);
            Console.WriteLine($"{accelerator.Descriptor.Id} ({accelerator.Descriptor.Name}): {r.GBps:0.0} GB/s " +
                              $"(copy of {Units.Bytes(r.BufferBytes)}, read+write, median of {r.Samples.Count}; " +
                              $"samples {string.Join(" ", r.Samples.Select(s => (s / 1e9).ToString("0.0")))})");
            return 0;
        });
        return command;
    }

    /// <summary>One greedy request of <paramref name="count"/> tokens through <paramref name="scheduler"/>, its stream
    /// drained; the result with its usage (TTFT, TPOT).</summary>
    internal static async Task<GenerationResult> GreedyRunAsync(Scheduler scheduler, int[] promptIds, int count, CancellationToken cancel)
    {
        var h = scheduler.Submit(new GenerationRequest("bench", promptIds, count, SamplingParams.Greedy), cancel);
        await foreach (var _ in h.Chunks.ReadAllAsync(CancellationToken.None)) { }
        return await h.Completion;
    }

    private static Command Decode()
    {
        var command = new Command("decode", "Single-stream decode speed against the bandwidth floor (weights resident)");
        var model = ModelOption.Create();
        var tokens = new Option<int>("--tokens", "-n") { Description = "Tokens to decode (after a warm-up run)", DefaultValueFactory = _ => 64 };
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt text", DefaultValueFactory = _ => "Once upon a time" };
        var json = new Option<string?>("--json") { Description = "Also write the results as JSON to this file" };
        var mmap = new Option<bool>("--mmap") { Description = "Serve weights from the mapped file instead of resident memory" };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var kvType = CommonOptions.KvType();
        var draft = new DraftOptions();
        foreach (var o in new Option[] { model, tokens, prompt, json, mmap, device, threads, kvType }.Concat(draft.All)) command.Options.Add(o);
        command.SetAction(async (parse, cancel) =>
        {
            int n = parse.GetValue(tokens);
            if (n is < 2 or > 100_000) return CliErrors.Fail($"--tokens {n} out of range [2, 100000]");
            string path = ModelOption.Resolve(parse.GetValue(model));
            using var accelerator = CommonOptions.Registry(parse).Open(parse.GetValue(device), new(parse.GetValue(threads)));
            var bw = BandwidthProbe.Measure(accelerator);
            Console.Error.WriteLine($"bandwidth: {bw.GBps:0.0} GB/s");
            var modelOptions = new ModelOptions { MaxBatchSequences = 1, UseMmap = parse.GetValue(mmap), KvCacheType = CommonOptions.KvCacheType(parse, kvType) };
            var lm = ProgressBar.Run($"loading {Path.GetFileName(path)}", ProgressUnit.Bytes,
                bar => LoadedModel.Open(path, accelerator, modelOptions, bar));
            using (lm)
            {
                // A self-draft reads the target's file in place (mapped) even when the target's weights are resident.
                string? draftSpec = parse.GetValue(draft.Draft);
                using var draftModel = DraftOptions.Load(draftSpec, path, lm, accelerator,
                    draftSpec?.StartsWith("self", StringComparison.Ordinal) == true ? modelOptions with { UseMmap = true } : modelOptions);
                int[] promptIds = lm.Tokenizer.Encode(parse.GetValue(prompt)!, lm.Tokenizer.AddBos);
                await using var scheduler = new Scheduler(lm.Model, new TokenizerDecoder(lm.Tokenizer, ignoreEndOfGeneration: true), new SchedulerOptions
                {
                    MaxBatchSequences = 1,
                    Speculative = draftModel is null ? null : draft.Options(parse, draftModel, lm),
                });
                Task<GenerationResult> Run(int count, int[] ids) => GreedyRunAsync(scheduler, ids, count, cancel);
                // Warm-up (JIT tiers up, pages fault in) on the prompt reversed, so that the measured run finds no cached
                // prefix blocks and its time to first token is a real prefill.
                await Run(Math.Min(16, n), promptIds.Reverse().ToArray());
                // The device's own energy counter around the measured run, where it has one (never an estimate).
                IEnergyMeter? meter = accelerator.EnergyMeter;
                double joulesBefore = 0;
                bool metered = meter is not null && meter.TryReadJoules(out joulesBefore);
                var result = await Run(n, promptIds);
                double? joulesPerToken = metered && meter!.TryReadJoules(out double joulesAfter) && result.Usage.CompletionTokens > 0
                    ? (joulesAfter - joulesBefore) / result.Usage.CompletionTokens : null;
                if (result.FinishReason == FinishReason.Error) return CliErrors.Fail(result.Error?.Message ?? "decode failed");
                double tpot = result.Usage.TimePerOutputToken?.TotalSeconds ?? double.NaN;
                double tokensPerSecond = 1 / tpot;
                long bytes = lm.Model.WeightBytes;
                double floorSeconds = bytes / bw.BytesPerSecond;
                var report = new
                {
                    device = accelerator.Descriptor.Id,
                    deviceName = accelerator.Descriptor.Name,
                    model = lm.Name,
                    file = Path.GetFileName(path),
                    weightBytes = bytes,
                    bandwidthGBps = Math.Round(bw.GBps, 2),
                    decodeTokensPerSecond = Math.Round(tokensPerSecond, 2),
                    floorTokensPerSecond = Math.Round(1 / floorSeconds, 2),
                    fractionOfFloor = Math.Round(floorSeconds / tpot, 3),
                    achievedGBps = Math.Round(bytes / tpot / 1e9, 2),
                    promptTokens = result.Usage.PromptTokens,
                    generatedTokens = result.Usage.CompletionTokens,
                    ttftMs = Math.Round(result.Usage.TimeToFirstToken?.TotalMilliseconds ?? double.NaN, 2),
                    tpotMs = Math.Round(tpot * 1000, 3),
                    energySource = joulesPerToken is null ? null : meter!.Source,
                    joulesPerToken = joulesPerToken is { } j ? Math.Round(j, 4) : (double?)null,
                    draft = draftSpec,
                    draftFile = draftModel is null ? null : Path.GetFileName(draftModel.Path),
                    draftLayers = draftModel?.Model.Config.Layers,
                    draftTokens = result.Usage.DraftTokens,
                    draftAcceptedTokens = result.Usage.DraftAcceptedTokens,
                    acceptanceRate = result.Usage.DraftAcceptanceRate is { } a ? Math.Round(a, 4) : (double?)null,
                };
                if (joulesPerToken is { } perToken)
                    Console.Error.WriteLine($"energy: {perToken:0.000} J per generated token ({meter!.Source}; the measured run, prompt included)");
                var table = Tables.Create(["model", "weights", "bandwidth", "decode", "floor", "of floor", "achieved", "draft", "accepted"], numeric: true);
                table.AddCells(report.file, Units.Bytes(bytes), $"{bw.GBps:0.0} GB/s", $"{tokensPerSecond:0.0} tok/s",
                    $"{1 / floorSeconds:0.0} tok/s", $"{floorSeconds / tpot:P0}", $"{report.achievedGBps:0.0} GB/s",
                    draftSpec ?? "none", report.acceptanceRate is { } ar ? $"{ar:P1} of {report.draftTokens}" : "—");
                Terminal.Out.WriteTable(table);
                if (parse.GetValue(json) is { } jsonPath)
                    File.WriteAllText(jsonPath, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
            }
            return 0;
        });
        return command;
    }
}
