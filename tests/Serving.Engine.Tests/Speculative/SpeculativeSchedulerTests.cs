using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using Serving.Engine.Speculative;
using Serving.Engine.Tests.Scheduling;
using static Serving.Engine.Tests.Scheduling.SchedulerTestKit;

namespace Serving.Engine.Tests.Speculative;

/// <summary>
/// Speculative decoding inside continuous batching, on fake models: the target is a <see cref="FakeStepModel"/> and the
/// draft another one with the same vocabulary whose logits are perturbed (it agrees with the target on some histories
/// and not on others), so drafts are partly accepted and the KV of rejected ones must be rolled back. The fakes check
/// every slot, block table and read-back position, so a rollback that leaves stale KV changes the tokens or throws.
/// </summary>
public class SpeculativeSchedulerTests
{
    private static FakeStepModel Draft(float perturbation, int blockCount = 64) =>
        new(blockCount: blockCount) { Perturbation = perturbation };

    private static Scheduler Create(FakeStepModel target, FakeStepModel draft, int maxK = 4, bool adaptive = true,
        int maxSequences = 16, int maxQueued = 64, int maxBatchTokens = 256) =>
        new(target, new FakeDecoder(target.VocabSize), new SchedulerOptions
        {
            MaxBatchSequences = maxSequences,
            MaxBatchTokens = maxBatchTokens,
            MaxQueuedRequests = maxQueued,
            Speculative = new SpeculativeOptions { Draft = draft, MaxDraftTokens = maxK, Adaptive = adaptive },
        });

    [Theory]
    [InlineData(2f, 4, false)]  // a close draft, k fixed at 4
    [InlineData(6f, 3, true)]   // a poor draft, k adapted
    [InlineData(0f, 5, false)]  // a perfect draft: everything accepted
    public async Task Greedy_output_is_the_targets_alone_for_a_full_batch(float perturbation, int maxK, bool adaptive)
    {
        var target = new FakeStepModel(blockCount: 128);
        var draft = Draft(perturbation, blockCount: 128);
        await using var scheduler = Create(target, draft, maxK, adaptive);
        // 16 requests at once (the batch is full), prompts of different lengths (some span several blocks).
        var prompts = Enumerable.Range(0, 16).Select(i => Prompt(i + 1, 1 + (i * 5) % 23)).ToArray();
        var handles = prompts.Select((p, i) => scheduler.Submit(Greedy($"r{i}", p, 12 + i % 9))).ToArray();
        var runs = await Task.WhenAll(handles.Select(CollectAsync));
        for (int i = 0; i < runs.Length; i++)
        {
            Assert.Equal(FinishReason.Length, runs[i].Result.FinishReason);
            Assert.Equal(target.ReferenceGreedy(prompts[i], 12 + i % 9), runs[i].Tokens);
            Assert.Equal(runs[i].Tokens, runs[i].Chunks.Select(c => c.TokenId).ToArray());
        }
        var m = scheduler.GetMetrics();
        Assert.True(m.DraftTokens > 0, "nothing was proposed");
        Assert.Equal(runs.Sum(r => r.Result.Usage.DraftTokens), m.DraftTokens);
        Assert.Equal(runs.Sum(r => r.Result.Usage.DraftAcceptedTokens), m.DraftAcceptedTokens);
        if (perturbation == 0f) Assert.Equal(m.DraftTokens, m.DraftAcceptedTokens);
        else Assert.InRange(m.DraftAcceptedTokens, 1, m.DraftTokens - 1);
        // Speculation took fewer target steps than tokens (several rows of one sequence per step).
        if (perturbation < 6f) Assert.True(m.Steps < runs.Sum(r => r.Tokens.Length), $"{m.Steps} steps for {runs.Sum(r => r.Tokens.Length)} tokens");
        Assert.Equal(0, m.KvBlocksUsed);
        Assert.Equal(0, m.DraftKvBlocksUsed);
        Assert.True(m.DraftKvBlocksTotal > 0);
    }

    [Fact]
    public async Task Greedy_output_is_unchanged_when_kv_blocks_run_short()
    {
        // 20 blocks of 4 slots for 6 requests of up to 40 positions: preemptions (recompute) while speculating.
        var target = new FakeStepModel(blockCount: 20);
        var draft = Draft(3f, blockCount: 12); // the draft's cache is shorter still: some proposals are dropped
        await using var scheduler = Create(target, draft, maxK: 4, adaptive: false, maxSequences: 6);
        var prompts = Enumerable.Range(0, 6).Select(i => Prompt(100 + i, 6 + i * 3)).ToArray();
        var handles = prompts.Select((p, i) => scheduler.Submit(Greedy($"r{i}", p, 20))).ToArray();
        var runs = await Task.WhenAll(handles.Select(CollectAsync));
        for (int i = 0; i < runs.Length; i++)
            Assert.Equal(target.ReferenceGreedy(prompts[i], 20), runs[i].Tokens);
        var m = scheduler.GetMetrics();
        Assert.True(m.DraftTokens > 0);
        Assert.Equal(0, m.KvBlocksUsed);
        Assert.Equal(0, m.DraftKvBlocksUsed);
    }

    [Fact]
    public async Task Stop_strings_and_end_of_generation_end_a_request_inside_an_accepted_run()
    {
        var target = new FakeStepModel();
        var draft = Draft(0f); // every draft accepted: the request must end at the right token all the same
        int[] prompt = Prompt(7, 5);
        int[] reference = target.ReferenceGreedy(prompt, 20);
        int eog = reference[6];
        int stopAt = Array.IndexOf(reference, eog);
        await using var scheduler = new Scheduler(target, new FakeDecoder(target.VocabSize, endOfGeneration: eog), new SchedulerOptions
        {
            Speculative = new SpeculativeOptions { Draft = draft, MaxDraftTokens = 5, Adaptive = false },
        });
        var run = await CollectAsync(scheduler.Submit(Greedy("eog", prompt, 20)));
        Assert.Equal(FinishReason.EndOfGeneration, run.Result.FinishReason);
        Assert.Equal(reference[..stopAt], run.Tokens);
        Assert.Equal(0, scheduler.GetMetrics().KvBlocksUsed);
        Assert.Equal(0, scheduler.GetMetrics().DraftKvBlocksUsed);
    }

    [Fact]
    public async Task Sampled_output_is_distributed_as_the_targets()
    {
        // One prompt, many seeds. The first token comes from the prompt's step (no draft yet); the next ones from
        // verifying the draft's proposals (k = 3: accepted drafts, a residual draw, or the bonus). Across seeds the
        // sequences (t1, t2) and (t1, t2, t3) must follow the target's joint distribution, not the draft's.
        var target = new FakeStepModel(vocab: 8, blockCount: 256);
        var draft = new FakeStepModel(vocab: 8, blockCount: 256) { Perturbation = 6f };
        int[] prompt = [1, 2, 3, 4, 5];
        var parameters = new SamplingParams(Temperature: 1f, TopK: 0, TopP: 1f, MinP: 0f);

        const int n = 4000;
        var outputs = new List<int[]>(n);
        await using (var scheduler = Create(target, draft, maxK: 3, adaptive: false, maxQueued: n))
        {
            var handles = Enumerable.Range(0, n)
                .Select(i => scheduler.Submit(new GenerationRequest($"s{i}", prompt, 4, parameters with { Seed = (ulong)(1000 + i) })))
                .ToArray();
            foreach (var h in handles)
            {
                var result = await h.Completion.WaitAsync(TimeSpan.FromSeconds(120));
                Assert.Equal(FinishReason.Length, result.FinishReason);
                outputs.Add([.. result.TokenIds]);
            }
            var m = scheduler.GetMetrics();
            Assert.True(m.DraftTokens >= n, $"{m.DraftTokens} draft tokens for {n} requests");
            Assert.InRange(m.DraftAcceptedTokens, 1, m.DraftTokens - 1);
            Assert.Equal(0, m.KvBlocksUsed);
            Assert.Equal(0, m.DraftKvBlocksUsed);
        }
        double Probability(FakeStepModel model, IReadOnlyList<int> tokens, int length)
        {
            double prob = 1;
            var history = new List<int>(prompt);
            var dist = new float[8];
            for (int i = 0; i < length; i++)
            {
                new Sampler(parameters).Probabilities(model.ReferenceLogits(history), history.ToArray(), dist);
                prob *= dist[tokens[i]];
                history.Add(tokens[i]);
            }
            return prob;
        }
        foreach (int length in new[] { 2, 3 })
        {
            var counts = outputs.GroupBy(o => string.Join(",", o.Take(length))).ToDictionary(g => g.Key, g => g.Count());
            foreach (string seen in counts.Keys)
                Assert.True(Probability(target, [.. seen.Split(',').Select(int.Parse)], length) > 0, $"emitted {seen}, impossible for the target");
            var (chi, df) = GoodnessOfFit(length, counts, t => Probability(target, t, length), n);
            Assert.True(chi < Quantile9999(df), $"tokens 1..{length}: chi-square {chi:0.0} with {df} degrees of freedom (bound {Quantile9999(df):0.0})");
            // The test has power: were the draft's distribution emitted after the first token, the statistic would be far larger.
            var (draftChi, _) = GoodnessOfFit(length, ExpectedCounts(length, t => Probability(target, t, 1) * Probability(draft, t, length) / Probability(draft, t, 1), n), t => Probability(target, t, length), n);
            Assert.True(draftChi > 3 * Quantile9999(df), $"draft and target too close for this test: {draftChi:0.0}");
        }
    }

    /// <summary>All token sequences of the given length over the fake's 7 ordinary ids (id 7 has logit −100).</summary>
    private static IEnumerable<int[]> AllSequences(int length) =>
        length == 0 ? [[]] : AllSequences(length - 1).SelectMany(prefix => Enumerable.Range(0, 7).Select(t => (int[])[.. prefix, t]));

    private static Dictionary<string, int> ExpectedCounts(int length, Func<int[], double> probability, int n) =>
        AllSequences(length).ToDictionary(t => string.Join(",", t), t => (int)Math.Round(n * probability(t)));

    /// <summary>Pearson's statistic over all sequences, cells expected below 5 pooled into one.</summary>
    private static (double Chi, int Df) GoodnessOfFit(int length, Dictionary<string, int> counts, Func<int[], double> probability, int n)
    {
        double chi = 0, pooledExpected = 0;
        int pooledCount = 0, cells = 0;
        foreach (int[] t in AllSequences(length))
        {
            double expected = n * probability(t);
            int observed = counts.GetValueOrDefault(string.Join(",", t));
            if (expected < 5) { pooledExpected += expected; pooledCount += observed; continue; }
            chi += (observed - expected) * (observed - expected) / expected;
            cells++;
        }
        if (pooledExpected > 0)
        {
            chi += (pooledCount - pooledExpected) * (pooledCount - pooledExpected) / pooledExpected;
            cells++;
        }
        return (chi, cells - 1);
    }

    /// <summary>The chi-square distribution's 99.99th percentile (Wilson–Hilferty; z = 3.719).</summary>
    private static double Quantile9999(int df)
    {
        double a = 2.0 / (9 * df);
        return df * Math.Pow(1 - a + 3.719 * Math.Sqrt(a), 3);
    }

    [Fact]
    public async Task Same_seed_gives_the_same_sampled_tokens()
    {
        var parameters = new SamplingParams(Temperature: 0.9f, TopK: 0, TopP: 1f, MinP: 0f, Seed: 42);
        int[][] runs = new int[2][];
        for (int r = 0; r < 2; r++)
        {
            var target = new FakeStepModel();
            await using var scheduler = Create(target, Draft(2f), maxK: 4, adaptive: true);
            runs[r] = [.. (await CollectAsync(scheduler.Submit(new GenerationRequest("x", Prompt(3, 9), 30, parameters)))).Result.TokenIds];
        }
        Assert.Equal(30, runs[0].Length);
        Assert.Equal(runs[0], runs[1]);
    }

    [Theory]
    [InlineData(false)] // cancelled while the target verifies
    [InlineData(true)]  // cancelled while the draft proposes
    public async Task Cancel_mid_speculation_leaves_no_kv_blocks_in_either_model(bool pauseDraft)
    {
        var target = new FakeStepModel();
        var draft = Draft(2f);
        await using var scheduler = Create(target, draft, maxK: 4, adaptive: false);
        var other = scheduler.Submit(Greedy("other", Prompt(9, 7), 30));
        FakeStepModel paused = pauseDraft ? draft : target;
        paused.PauseAtCall = 4; // a few steps in: both models hold blocks for both requests
        var victim = scheduler.Submit(Greedy("victim", Prompt(8, 13), 60));
        await WaitForStepsAsync(paused, 4);
        victim.Cancel();
        paused.Resume();
        var result = await victim.Completion.WaitAsync(HangGuard);
        Assert.Equal(FinishReason.Cancelled, result.FinishReason);
        var rest = await CollectAsync(other);
        Assert.Equal(target.ReferenceGreedy(Prompt(9, 7), 30), rest.Tokens);
        var m = scheduler.GetMetrics();
        Assert.Equal(0, m.KvBlocksUsed);
        Assert.Equal(0, m.DraftKvBlocksUsed);
        Assert.Equal(1, m.Cancelled);
    }

    [Fact]
    public void A_draft_with_another_vocabulary_is_refused()
    {
        var target = new FakeStepModel(vocab: 32);
        var draft = new FakeStepModel(vocab: 16);
        var ex = Assert.Throws<ArgumentException>(() => Create(target, draft));
        Assert.Contains("vocabulary", ex.Message);
    }
}
