using Serving.Engine.Models;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using static Serving.Engine.Tests.Scheduling.SchedulerTestKit;

namespace Serving.Engine.Tests.Scheduling;

/// <summary>
/// Every scheduler test again, on a model that splits its step (<see cref="IPipelinedStepModel"/>): the scheduler then
/// plans step n+1 while step n runs. Plus: a mixed workload gives the same steps, tokens, times and counters with and
/// without planning ahead, and planning ahead is really used.
/// </summary>
public sealed class PipelinedSchedulerTests : SchedulerTests
{
    protected override bool Pipelined => true;

    private sealed record Outcome(List<FakeStepModel.StepRecord> Steps, List<Run> Runs, SchedulerMetrics Metrics, (long Used, long Dropped) PlannedAhead, int SplitSteps);

    /// <summary>
    /// Greedy and seeded requests, a stop string, an end-of-generation token, chunked prefill under a 16-token budget,
    /// a shared prefix, and too few KV blocks for all of them at once (preemptions), all submitted while the first step
    /// is held so both runs see the same arrivals.
    /// </summary>
    private static async Task<Outcome> RunWorkload(bool pipelining)
    {
        const int vocab = 32, endOfGeneration = 5;
        var model = new FakeStepModel(vocab, context: 64, blockSize: 4, blockCount: 24);
        var wrapped = new PipelinedFakeModel(model);
        await using var scheduler = new Scheduler(wrapped, new FakeDecoder(vocab, endOfGeneration),
            new SchedulerOptions { MaxBatchTokens = 16, MaxBatchSequences = 6, Pipelining = pipelining }, model.Clock);
        model.Pause();
        var warm = scheduler.Submit(Greedy("warm", Prompt(90, 3), 2));
        await WaitForStepsAsync(model);
        int[] shared = Prompt(42, 12);
        var requests = new List<GenerationRequest>
        {
            Greedy("g0", Prompt(1, 5), 18),
            Greedy("g1", [.. shared, .. Prompt(2, 3)], 9),
            Greedy("g2", [.. shared, .. Prompt(3, 4)], 12),
            Greedy("long", Prompt(4, 30), 6),
            new("s0", Prompt(5, 6), 14, new SamplingParams(Temperature: 0.9f, TopK: 0, TopP: 1f, MinP: 0f, Seed: 3)),
            new("s1", Prompt(6, 7), 11, new SamplingParams(Temperature: 1.2f, TopK: 8, TopP: 0.9f, MinP: 0f, Seed: 4)),
            Greedy("stop", Prompt(7, 4), 20, [FakeDecoder.Piece(model.ReferenceGreedy(Prompt(7, 4), 20)[6])]),
            Greedy("g3", Prompt(8, 9), 16),
        };
        var handles = requests.Select(r => scheduler.Submit(r)).ToList();
        model.Resume();
        var runs = new List<Run>();
        foreach (var h in handles) runs.Add(await CollectAsync(h));
        runs.Add(await CollectAsync(warm));
        return new Outcome([.. model.Steps], runs, scheduler.GetMetrics(), scheduler.PlannedAhead, wrapped.SplitSteps);
    }

    [Fact]
    public async Task Planning_ahead_gives_the_same_steps_tokens_times_and_counters()
    {
        Outcome plain = await RunWorkload(pipelining: false);
        Outcome ahead = await RunWorkload(pipelining: true);

        Assert.Equal(plain.Steps, ahead.Steps);
        Assert.Equal(plain.Runs.Count, ahead.Runs.Count);
        for (int i = 0; i < plain.Runs.Count; i++)
        {
            GenerationResult a = plain.Runs[i].Result, b = ahead.Runs[i].Result;
            Assert.Equal(a.FinishReason, b.FinishReason);
            Assert.Equal(a.TokenIds, b.TokenIds);
            Assert.Equal(a.Text, b.Text);
            Assert.Equal(a.Usage, b.Usage);
            Assert.Equal(plain.Runs[i].Chunks, ahead.Runs[i].Chunks);
        }
        Assert.Equal(plain.Metrics, ahead.Metrics);
        // The workload exercises what it claims to, and the two runs really differ in how they planned.
        Assert.True(plain.Metrics.Preemptions > 0, "expected preemptions");
        Assert.True(plain.Metrics.PrefixCacheHitTokens > 0, "expected prefix cache hits");
        Assert.Contains(plain.Runs, r => r.Result.FinishReason == FinishReason.Stop);
        Assert.Contains(plain.Runs, r => r.Result.FinishReason == FinishReason.EndOfGeneration);
        Assert.Equal((0, 0), plain.PlannedAhead);
        Assert.Equal(0, plain.SplitSteps);
        Assert.Equal(ahead.Steps.Count, ahead.SplitSteps);
        Assert.True(ahead.PlannedAhead.Used > ahead.Steps.Count / 3, $"planned ahead {ahead.PlannedAhead} of {ahead.Steps.Count} steps");
        Assert.True(ahead.PlannedAhead.Dropped > 0, "a finishing sequence must drop a plan");
    }

    [Fact]
    public async Task Steady_decode_is_planned_ahead_every_step()
    {
        var (model, scheduler) = Create(new SchedulerOptions { MaxBatchSequences = 4 }, blockCount: 128);
        await using var _ = scheduler;
        model.Pause();
        var first = scheduler.Submit(Greedy("a", Prompt(1, 5), 20));
        await WaitForStepsAsync(model);
        var others = Enumerable.Range(2, 3).Select(i => scheduler.Submit(Greedy($"r{i}", Prompt(i, 5), 20))).ToArray();
        model.Resume();
        Run[] runs = [await CollectAsync(first), .. await Task.WhenAll(others.Select(CollectAsync))];

        Assert.Equal(model.ReferenceGreedy(Prompt(1, 5), 20), runs[0].Tokens);
        // Step 1: "a" alone; step 2: its decode planned ahead, the three prefills admitted after; steps 3–20 planned
        // ahead; "a" finishes in step 20, which drops the plan for step 21; the others finish in step 21.
        var (used, dropped) = scheduler.PlannedAhead;
        Assert.Equal(21, model.Steps.Count);
        Assert.Equal(19, used);
        Assert.Equal(1, dropped);
    }
}
