using System.CommandLine;
using System.Text;
using Serving.Engine.Models;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary>
/// <c>generate</c>: one prompt through the same scheduler the server uses, streaming text to stdout, then a
/// line of figures on stderr (prompt and generated tokens, and their rates).
/// </summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var command = new Command("generate", "Generate text from a prompt, streaming it");
        var model = ModelOption.Create();
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt text", DefaultValueFactory = _ => "Once upon a time" };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Tokens to generate", DefaultValueFactory = _ => 64 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature (0 = greedy)", DefaultValueFactory = _ => 0.8f };
        var topK = new Option<int>("--top-k") { Description = "Keep the K most likely tokens (0 = all)", DefaultValueFactory = _ => 40 };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling threshold (1 = off)", DefaultValueFactory = _ => 0.95f };
        var minP = new Option<float>("--min-p") { Description = "Drop tokens below min-p × the top probability (0 = off)", DefaultValueFactory = _ => 0.05f };
        var repeat = new Option<float>("--repeat-penalty") { Description = "Penalty for recently seen tokens (1 = off)", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong?>("--seed") { Description = "Sampling seed (same seed, same tokens); default random" };
        var ignoreEos = new Option<bool>("--ignore-eos") { Description = "Keep generating past end-of-generation tokens (for benchmarks)" };
        var ctx = new Option<int>("--ctx") { Description = "Context length (0 = the model's, at most 4096)", DefaultValueFactory = _ => 0 };
        var device = DeviceTuning.Device();
        var noTune = DeviceTuning.NoTune();
        var threads = CommonOptions.Threads();
        var noMmap = CommonOptions.NoMmap();
        var kvType = CommonOptions.KvType();
        var checkTensors = CommonOptions.CheckTensors();
        var draft = new DraftOptions();
        foreach (var o in new Option[] { model, prompt, maxTokens, temperature, topK, topP, minP, repeat, seed, ignoreEos, ctx, device, noTune, threads, noMmap, kvType, checkTensors }.Concat(draft.All))
            command.Options.Add(o);
        command.SetAction(async (parse, cancel) =>
        {
            int n = parse.GetValue(maxTokens);
            if (n < 1 || n > 1 << 20) return CliErrors.Fail($"--max-tokens {n} out of range [1, 1048576]");
            var sampling = new SamplingParams(parse.GetValue(temperature), parse.GetValue(topK), parse.GetValue(topP),
                parse.GetValue(minP), parse.GetValue(repeat), 64, parse.GetValue(seed));
            sampling.Validate();

            string path = ModelOption.Resolve(parse.GetValue(model));
            var registry = CommonOptions.Registry(parse);
            var tuned = DeviceTuning.Resolve(registry, parse.GetValue(device)!, path, new Abstractions.DeviceOptions(parse.GetValue(threads)),
                parse.GetValue(noTune), CommonOptions.KvCacheType(parse, kvType), !parse.GetValue(noMmap));
            var modelOptions = new ModelOptions
            {
                ContextLength = parse.GetValue(ctx),
                MaxBatchSequences = 1,
                KvCacheType = CommonOptions.KvCacheType(parse, kvType),
                Kernels = tuned.Profile is null ? null : Engine.Tuning.KernelPlan.From(tuned.Profile),
                CheckTensors = parse.GetValue(checkTensors),
            };
            using var session = ModelSession.Open(parse, path, registry, tuned.DeviceId, threads, noMmap, modelOptions);
            using var draftModel = DraftOptions.Load(parse.GetValue(draft.Draft), path, session.Loaded, session.Device,
                modelOptions with { UseMmap = !parse.GetValue(noMmap), CheckTensors = false });
            if (tuned.Profile is { } profile) DeviceTuning.Describe(profile, session.Device, 1, 1, "", batching: false);
            var tokenizer = session.Loaded.Tokenizer;
            int[] promptIds = tokenizer.Encode(parse.GetValue(prompt)!, tokenizer.AddBos);
            var decoder = new TokenizerDecoder(tokenizer, parse.GetValue(ignoreEos));
            await using var scheduler = new Scheduler(session.Loaded.Model, decoder, new SchedulerOptions
            {
                MaxBatchSequences = 1,
                Speculative = draftModel is null ? null : draft.Options(parse, draftModel, session.Loaded),
            });
            var handle = scheduler.Submit(new GenerationRequest("cli", promptIds, n, sampling), cancel);

            var stdout = Console.Out;
            stdout.Write(parse.GetValue(prompt));
            await foreach (var chunk in handle.Chunks.ReadAllAsync(CancellationToken.None))
                stdout.Write(chunk.Text);
            stdout.WriteLine();
            stdout.Flush();
            var result = await handle.Completion;
            if (result.FinishReason == FinishReason.Error)
                return CliErrors.Fail(result.Error?.Message ?? "generation failed");
            var u = result.Usage;
            double ttft = u.TimeToFirstToken?.TotalSeconds ?? double.NaN;
            double genSeconds = u.TotalTime.TotalSeconds - ttft;
            double genRate = u.CompletionTokens > 1 ? (u.CompletionTokens - 1) / genSeconds : double.NaN;
            Console.Error.WriteLine(
                $"prompt tokens: {u.PromptTokens}, generated tokens: {u.CompletionTokens}, " +
                $"prompt: {u.PromptTokens / ttft:0.0} tokens/s, generated: {genRate:0.0} tokens/s " +
                $"(finish: {result.FinishReason.ToString().ToLowerInvariant()}, seed {result.Seed})" +
                (u.DraftAcceptanceRate is { } rate ? $", draft tokens: {u.DraftTokens}, accepted: {u.DraftAcceptedTokens} ({rate:P1})" : ""));
            return result.FinishReason == FinishReason.Cancelled ? 130 : 0;
        });
        return command;
    }
}
