using Serving.Engine.Scheduling;

namespace Serving.Engine.Tests.Scheduling;

internal sealed record Run(GenerationResult Result, List<GenerationChunk> Chunks)
{
    public int[] Tokens => [.. Result.TokenIds];
}

internal static class SchedulerTestKit
{
    /// <summary>
    /// Hang guard on the real clock: how long a test waits for something that should already be under way before
    /// it fails instead of hanging. Never a delay: the scheduler's own times come from the fake model's clock.
    /// </summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(15);

    /// <summary>Reads every chunk then the result (fails instead of hanging if the scheduler stalls).</summary>
    public static async Task<Run> CollectAsync(GenerationHandle handle)
    {
        using var cts = new CancellationTokenSource(HangGuard);
        var chunks = new List<GenerationChunk>();
        await foreach (GenerationChunk c in handle.Chunks.ReadAllAsync(cts.Token)) chunks.Add(c);
        GenerationResult result = await handle.Completion.WaitAsync(HangGuard);
        return new Run(result, chunks);
    }

    /// <summary>Deterministic prompt of ordinary tokens (never the fake's poison id vocab−1).</summary>
    public static int[] Prompt(int seed, int length, int vocab = 32)
    {
        var tokens = new int[length];
        uint x = (uint)seed * 2654435761u + 12345u;
        for (int i = 0; i < length; i++)
        {
            x = x * 1664525u + 1013904223u;
            tokens[i] = (int)((x >> 8) % (uint)(vocab - 1));
        }
        return tokens;
    }

    public static GenerationRequest Greedy(string id, int[] prompt, int maxTokens, IReadOnlyList<string>? stops = null)
        => new(id, prompt, maxTokens, Serving.Engine.Sampling.SamplingParams.Greedy, stops);

    /// <summary>Waits until the fake model has entered <paramref name="count"/> more Forward calls.</summary>
    public static async Task WaitForStepsAsync(FakeStepModel model, int count = 1)
    {
        for (int i = 0; i < count; i++)
            Assert.True(await model.StepStarted.WaitAsync(HangGuard), "the scheduler never ran a step");
    }
}
