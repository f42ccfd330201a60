using Serving.Engine.Routing;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using Serving.Engine.Tests.Scheduling;

namespace Serving.Engine.Tests.Routing;

/// <summary>
/// The router on real schedulers over fake models of known confidence: who answers, that escalation restarts on the
/// costlier tier with nothing of the cheaper one's streamed, shedding, and that cancelling at any point leaves no KV
/// blocks in either tier. Waits are on conditions (a model's step starting, a task ending), with a hang guard only.
/// </summary>
public sealed class TierRouterTests
{
    private const int Vocab = 32;
    private static readonly TimeSpan Guard = SchedulerTestKit.HangGuard;

    /// <summary>A tiny decoder: token t is the text "t " (never end-of-generation).</summary>
    private sealed class NumberDecoder : ITokenDecoder
    {
        public string Decode(ReadOnlySpan<int> tokens)
        {
            var sb = new System.Text.StringBuilder();
            foreach (int t in tokens) sb.Append(t).Append(' ');
            return sb.ToString();
        }

        public bool IsEndOfGeneration(int token) => false;
    }

    private sealed class Cascade : IAsyncDisposable
    {
        public Cascade(float smallPeak, double largeTpotMs = 0, double largeTargetMs = 0, int probe = 4)
        {
            SmallModel = new ConfidenceStepModel(offset: 1, smallPeak);
            LargeModel = new ConfidenceStepModel(offset: 2, peak: 20);
            SmallScheduler = new Scheduler(SmallModel, new NumberDecoder());
            LargeScheduler = new Scheduler(LargeModel, new NumberDecoder());
            Small = new Tier("small", SmallScheduler);
            Large = new Tier("large", LargeScheduler, largeTargetMs, largeTpotMs);
            Router = new TierRouter([Small, Large], new TierPolicy(new TierPolicyOptions { ProbeTokens = probe, MinMeanLogProb = -1.0, MaxMeanEntropy = 2.0 }));
        }

        public ConfidenceStepModel SmallModel { get; }
        public ConfidenceStepModel LargeModel { get; }
        public Scheduler SmallScheduler { get; }
        public Scheduler LargeScheduler { get; }
        public Tier Small { get; }
        public Tier Large { get; }
        public TierRouter Router { get; }

        public async ValueTask DisposeAsync()
        {
            SmallModel.Resume();
            LargeModel.Resume();
            await SmallScheduler.DisposeAsync();
            await LargeScheduler.DisposeAsync();
        }
    }

    private static GenerationRequest Request(int maxTokens = 10) =>
        new("r", SchedulerTestKit.Prompt(3, 6, Vocab), maxTokens, SamplingParams.Greedy);

    private static async Task<(RoutedResult Result, List<GenerationChunk> Chunks)> CollectAsync(RoutedGeneration g)
    {
        using var cts = new CancellationTokenSource(Guard);
        var chunks = new List<GenerationChunk>();
        await foreach (var c in g.Chunks.ReadAllAsync(cts.Token)) chunks.Add(c);
        return (await g.Completion.WaitAsync(Guard), chunks);
    }

    private static int[] Expected(ConfidenceStepModel m, int promptLength, int count) =>
        [.. Enumerable.Range(promptLength - 1, count).Select(m.Next)];

    [Fact]
    public void ScoredTokens_AreTheGreedyTokens_WithTheirLogProbAndEntropy()
    {
        var uniform = TokenScore.Of(new float[Vocab], 5);
        Assert.Equal(-Math.Log(Vocab), uniform.LogProb, 4);
        Assert.Equal(Math.Log(Vocab), uniform.Entropy, 4);
        var logits = new float[Vocab];
        logits[7] = 30;
        var sure = TokenScore.Of(logits, 7);
        Assert.True(sure.LogProb > -1e-6 && sure.Entropy < 1e-6, $"{sure}");
    }

    [Fact]
    public async Task ConfidentSmall_Answers_LargeNeverRuns()
    {
        await using var c = new Cascade(smallPeak: 20);
        var (r, chunks) = await CollectAsync(c.Router.Submit(Request(), TierRoute.Auto));
        Assert.Equal("small", r.Tier.Name);
        Assert.Equal(TierReason.Confident, r.Reason);
        Assert.Equal(4, r.Confidence!.Value.Tokens);
        Assert.Equal(Expected(c.SmallModel, 6, 10), r.Result.TokenIds);
        Assert.Equal(r.Result.TokenIds, chunks.Where(x => x.TokenId >= 0).Select(x => x.TokenId));
        Assert.Equal((1, 1, 0, 0), (c.Small.Started, c.Small.Answered, c.Small.Escalations, c.Large.Started));
    }

    [Fact]
    public async Task UnsureSmall_Escalates_LargeAnswersFromThePrompt_NothingOfTheSmallStreamed()
    {
        await using var c = new Cascade(smallPeak: 0.5f); // nearly flat: ln p = 0.5 − ln(31 + e^0.5) ≈ −2.99 < −1
        var (r, chunks) = await CollectAsync(c.Router.Submit(Request(), TierRoute.Auto));
        Assert.Equal("large", r.Tier.Name);
        Assert.Equal(TierReason.LowConfidence, r.Reason);
        Assert.Equal(["small", "large"], r.Tried);
        Assert.Equal(0.5 - Math.Log(Vocab - 1 + Math.Exp(0.5)), r.Confidence!.Value.MeanLogProb, 3);
        Assert.Equal(Expected(c.LargeModel, 6, 10), r.Result.TokenIds);
        // Every streamed token is the large model's, in order: nothing the small one made was released.
        Assert.Equal(r.Result.TokenIds, chunks.Where(x => x.TokenId >= 0).Select(x => x.TokenId));
        Assert.Equal(string.Concat(chunks.Select(x => x.Text)), r.Result.Text);
        Assert.Equal((1, 0, 1), (c.Small.Started, c.Small.Answered, c.Small.Escalations));
        Assert.Equal((1, 1), (c.Large.Started, c.Large.Answered));
        Assert.Equal(0, c.SmallScheduler.GetMetrics().KvBlocksUsed);
        Assert.Equal(0, c.LargeScheduler.GetMetrics().KvBlocksUsed);
    }

    [Fact]
    public async Task UnsureSmall_LargeOverloaded_IsShed_ToSmall()
    {
        // The large tier is known to take 100 ms a token against a 10 ms target, and it is busy (a request of its own
        // held inside a step): every escalation would break its target.
        await using var c = new Cascade(smallPeak: 0.5f, largeTpotMs: 100, largeTargetMs: 10);
        c.LargeModel.Pause();
        var busy = c.LargeScheduler.Submit(Request());
        Assert.True(await c.LargeModel.StepStarted.WaitAsync(Guard), "the large tier never ran");
        var (r, _) = await CollectAsync(c.Router.Submit(Request(), TierRoute.Auto));
        c.LargeModel.Resume();
        await busy.Completion.WaitAsync(Guard);
        Assert.Equal("small", r.Tier.Name);
        Assert.Equal(TierReason.Shed, r.Reason);
        Assert.Equal(Expected(c.SmallModel, 6, 10), r.Result.TokenIds);
        Assert.Equal((1, 1), (c.Small.Shed, c.Small.Answered));
        Assert.Equal(0, c.Large.Started);

        // A request that does not allow shedding escalates anyway.
        var (strict, _) = await CollectAsync(c.Router.Submit(Request(), new TierRoute(null, 0, AllowShed: false)));
        Assert.Equal(("large", TierReason.LowConfidence), (strict.Tier.Name, strict.Reason));
    }

    [Fact]
    public async Task NamedTier_RunsThere_Unprobed()
    {
        await using var c = new Cascade(smallPeak: 0.5f);
        var (r, _) = await CollectAsync(c.Router.Submit(Request(), new TierRoute(0, 0, AllowShed: false)));
        Assert.Equal(("small", TierReason.Requested), (r.Tier.Name, r.Reason));
        Assert.Null(r.Confidence);
        Assert.Equal(Expected(c.SmallModel, 6, 10), r.Result.TokenIds);
    }

    [Fact]
    public async Task ShortRequest_FinishedWithinTheProbe_IsStillJudged()
    {
        await using var c = new Cascade(smallPeak: 0.5f, probe: 8);
        var (r, _) = await CollectAsync(c.Router.Submit(Request(maxTokens: 3), TierRoute.Auto));
        Assert.Equal("large", r.Tier.Name);
        Assert.Equal(3, r.Confidence!.Value.Tokens);
        Assert.Equal(Expected(c.LargeModel, 6, 3), r.Result.TokenIds);
    }

    [Fact]
    public async Task CancelledMidEscalation_LeavesNoKvBlocks_InEitherTier()
    {
        await using var c = new Cascade(smallPeak: 0.5f);
        // Drain the start signals the schedulers may already have given (none yet: no request has run).
        c.LargeModel.Pause();
        using var cts = new CancellationTokenSource();
        var g = c.Router.Submit(Request(), TierRoute.Auto, cts.Token);
        // The large tier has admitted the restarted request (KV reserved) and is inside its first step.
        Assert.True(await c.LargeModel.StepStarted.WaitAsync(Guard), "the request never reached the large tier");
        Assert.True(c.LargeScheduler.GetMetrics().KvBlocksUsed > 0);
        cts.Cancel();
        c.LargeModel.Resume();
        var (r, _) = await CollectAsync(g);
        Assert.Equal(FinishReason.Cancelled, r.Result.FinishReason);
        Assert.Equal("large", r.Tier.Name);
        foreach (var s in new[] { c.SmallScheduler, c.LargeScheduler })
        {
            var m = s.GetMetrics();
            Assert.Equal((0, 0, 0), (m.KvBlocksUsed, m.Running, m.Waiting));
        }
    }

    [Fact]
    public async Task CancelledDuringTheProbe_LeavesNoKvBlocks_AndNeverEscalates()
    {
        await using var c = new Cascade(smallPeak: 0.5f);
        c.SmallModel.Pause();
        using var cts = new CancellationTokenSource();
        var g = c.Router.Submit(Request(), TierRoute.Auto, cts.Token);
        Assert.True(await c.SmallModel.StepStarted.WaitAsync(Guard), "the small tier never ran");
        cts.Cancel();
        c.SmallModel.Resume();
        var (r, chunks) = await CollectAsync(g);
        Assert.Equal(FinishReason.Cancelled, r.Result.FinishReason);
        Assert.Equal("small", r.Tier.Name);
        Assert.Empty(chunks.Where(x => x.TokenId >= 0).Skip(4)); // at most the held probe was released
        Assert.Equal(0, c.Large.Started);
        foreach (var s in new[] { c.SmallScheduler, c.LargeScheduler })
        {
            var m = s.GetMetrics();
            Assert.Equal((0, 0, 0), (m.KvBlocksUsed, m.Running, m.Waiting));
        }
    }

    [Fact]
    public async Task ManyConcurrentAutoRequests_MixedConfidence_AllEndClean()
    {
        await using var c = new Cascade(smallPeak: 0.5f);
        var runs = Enumerable.Range(0, 12).Select(_ => c.Router.Submit(Request(6), TierRoute.Auto)).ToList();
        foreach (var g in runs)
        {
            var (r, _) = await CollectAsync(g);
            Assert.Equal(("large", 6), (r.Tier.Name, r.Result.TokenIds.Count));
        }
        Assert.Equal(12, c.Small.Escalations);
        Assert.Equal(0, c.SmallScheduler.GetMetrics().KvBlocksUsed);
        Assert.Equal(0, c.LargeScheduler.GetMetrics().KvBlocksUsed);
    }
}
