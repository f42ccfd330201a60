using Serving.Engine.Models;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using static Serving.Engine.Tests.Scheduling.SchedulerTestKit;

namespace Serving.Engine.Tests.Scheduling;

/// <summary>The scheduler on a model that runs each step start to end (<see cref="IStepModel.Forward(StepBatch, Span{float}, Span{int})"/>);
/// <see cref="PipelinedSchedulerTests"/> runs every test again on a model that splits its step, where the scheduler
/// plans step n+1 while step n runs: same steps, same tokens, same times.</summary>
public class SchedulerTests
{
    /// <summary>True: the scheduler gets the fake model through <see cref="PipelinedFakeModel"/>.</summary>
    protected virtual bool Pipelined => false;

    private protected (FakeStepModel Model, Scheduler Scheduler) Create(SchedulerOptions? options = null, int vocab = 32,
        int context = 64, int blockSize = 4, int blockCount = 64, int endOfGeneration = -1)
    {
        // The scheduler reads the fake model's clock, which moves only when a step runs: times are exact.
        var model = new FakeStepModel(vocab, context, blockSize, blockCount);
        IStepModel stepModel = Pipelined ? new PipelinedFakeModel(model) : model;
        return (model, new Scheduler(stepModel, new FakeDecoder(vocab, endOfGeneration), options, model.Clock));
    }

    [Fact]
    public async Task Single_greedy_request_matches_the_unpaged_reference()
    {
        var (model, scheduler) = Create();
        await using var _ = scheduler;
        int[] prompt = Prompt(1, 9);

        Run run = await CollectAsync(scheduler.Submit(Greedy("a", prompt, 12)));

        Assert.Equal(FinishReason.Length, run.Result.FinishReason);
        Assert.Equal(model.ReferenceGreedy(prompt, 12), run.Tokens);
        Assert.Equal(string.Concat(run.Tokens.Select(FakeDecoder.Piece)), run.Result.Text);
        Assert.Equal(run.Tokens, run.Chunks.Where(c => c.TokenId != GenerationChunk.NoToken).Select(c => c.TokenId));
        Assert.Equal(run.Result.Text, string.Concat(run.Chunks.Select(c => c.Text)));
        Assert.Equal(new[] { 9, 12, 0, 0 }, new[] { run.Result.Usage.PromptTokens, run.Result.Usage.CompletionTokens, run.Result.Usage.CachedPromptTokens, run.Result.Usage.Preemptions });
        Assert.Equal(12, model.Steps.Count); // one prefill step, then one decode step per further token
        // On the model's clock (10 ms a step): admitted at once, first token after the prefill step, then one per step.
        GenerationUsage usage = run.Result.Usage;
        Assert.Equal(TimeSpan.Zero, usage.QueueTime);
        Assert.Equal(model.StepTime, usage.TimeToFirstToken);
        Assert.Equal(model.StepTime, usage.TimePerOutputToken);
        Assert.Equal(12 * model.StepTime, usage.TotalTime);
    }

    [Fact]
    public async Task Concurrent_requests_share_steps_and_each_gets_its_own_tokens()
    {
        var (model, scheduler) = Create(new SchedulerOptions { MaxBatchSequences = 16 }, blockCount: 256);
        await using var _ = scheduler;
        // Hold the loop inside the first step so the next eight requests all join the same later steps.
        model.Pause();
        var warm = scheduler.Submit(Greedy("warm", Prompt(100, 3), 4));
        await WaitForStepsAsync(model);
        int[][] prompts = [.. Enumerable.Range(0, 8).Select(i => Prompt(i, 3 + i))];
        var handles = prompts.Select((p, i) => scheduler.Submit(Greedy($"r{i}", p, 10))).ToArray();
        model.Resume();

        Run[] runs = await Task.WhenAll(handles.Select(CollectAsync));
        await CollectAsync(warm);

        for (int i = 0; i < prompts.Length; i++) Assert.Equal(model.ReferenceGreedy(prompts[i], 10), runs[i].Tokens);
        // Alone these would take 8 × 10 steps; batched, the prefills land in one step and every decode step carries all eight.
        Assert.True(model.Steps.Count <= 1 + 10, $"{model.Steps.Count} steps");
        Assert.Contains(model.Steps, s => s.Sequences >= 8);
        SchedulerMetrics m = scheduler.GetMetrics();
        Assert.Equal(9, m.Completed);
        Assert.Equal(model.Steps.Count, m.Steps);
        Assert.True(m.MeanBatchSequences > 4, $"mean batch {m.MeanBatchSequences}");
    }

    [Fact]
    public async Task Long_prompt_is_prefilled_in_chunks_under_the_token_budget_while_others_decode()
    {
        var (model, scheduler) = Create(new SchedulerOptions { MaxBatchTokens = 16 }, context: 128, blockCount: 64);
        await using var _ = scheduler;
        model.Pause();
        var shortOne = scheduler.Submit(Greedy("short", Prompt(7, 4), 20));
        await WaitForStepsAsync(model);
        int[] longPrompt = Prompt(8, 70);
        var longOne = scheduler.Submit(Greedy("long", longPrompt, 5));
        model.Resume();

        Run shortRun = await CollectAsync(shortOne), longRun = await CollectAsync(longOne);

        Assert.Equal(model.ReferenceGreedy(Prompt(7, 4), 20), shortRun.Tokens);
        Assert.Equal(model.ReferenceGreedy(longPrompt, 5), longRun.Tokens);
        Assert.All(model.Steps, s => Assert.True(s.Tokens <= 16, $"step of {s.Tokens} tokens"));
        // Chunked prefill mixed with decode: steps that carry one decode token and a 15-token prompt chunk.
        Assert.Contains(model.Steps, s => s.Sequences == 2 && s.Tokens == 16);
        Assert.True(model.Steps.Count >= 70 / 16, "the long prompt cannot fit in fewer steps");
    }

    [Fact]
    public async Task Repeated_system_prompt_is_served_from_the_prefix_cache()
    {
        var (model, scheduler) = Create(context: 128, blockCount: 64);
        await using var _ = scheduler;
        int[] system = Prompt(42, 32); // 8 full blocks of 4
        int[] first = [.. system, .. Prompt(1, 5)];
        int[] second = [.. system, .. Prompt(2, 6)];

        Run a = await CollectAsync(scheduler.Submit(Greedy("a", first, 6)));
        long computedAfterFirst = scheduler.GetMetrics().ComputedTokens;
        Run b = await CollectAsync(scheduler.Submit(Greedy("b", second, 6)));

        Assert.Equal(0, a.Result.Usage.CachedPromptTokens);
        Assert.Equal(32, b.Result.Usage.CachedPromptTokens);
        Assert.Equal(model.ReferenceGreedy(second, 6), b.Tokens); // the reused KV is the right KV
        SchedulerMetrics m = scheduler.GetMetrics();
        Assert.Equal(32, m.PrefixCacheHitTokens);
        // The second request ran only its 6 new prompt tokens and 5 decode tokens through the model.
        Assert.Equal(6 + 5, m.ComputedTokens - computedAfterFirst);
        Assert.True(m.KvBlocksCached >= 8);
        Assert.Equal(0, m.KvBlocksUsed);
    }

    [Fact]
    public async Task Whole_prompt_cached_still_recomputes_the_last_token_for_logits()
    {
        var (model, scheduler) = Create();
        await using var _ = scheduler;
        int[] prompt = Prompt(5, 8); // exactly two blocks

        Run a = await CollectAsync(scheduler.Submit(Greedy("a", prompt, 3)));
        Run b = await CollectAsync(scheduler.Submit(Greedy("b", prompt, 3)));

        Assert.Equal(a.Tokens, b.Tokens);
        Assert.Equal(model.ReferenceGreedy(prompt, 3), b.Tokens);
        Assert.Equal(4, b.Result.Usage.CachedPromptTokens); // block 2 holds the last token, which must run
    }

    [Fact]
    public async Task Running_out_of_kv_blocks_preempts_and_recomputes_with_correct_outputs()
    {
        // 12 blocks of 4 = 48 slots; four requests that each end up needing 5 blocks cannot all stay resident.
        var (model, scheduler) = Create(context: 48, blockCount: 12);
        await using var _ = scheduler;
        model.Pause();
        var warm = scheduler.Submit(Greedy("warm", Prompt(99, 2), 1));
        await WaitForStepsAsync(model);
        int[][] prompts = [.. Enumerable.Range(0, 4).Select(i => Prompt(10 + i, 6))];
        var handles = prompts.Select((p, i) => scheduler.Submit(Greedy($"r{i}", p, 14))).ToArray();
        model.Resume();

        Run[] runs = await Task.WhenAll(handles.Select(CollectAsync));
        await CollectAsync(warm);

        for (int i = 0; i < runs.Length; i++)
        {
            Assert.Equal(model.ReferenceGreedy(prompts[i], 14), runs[i].Tokens);
            // Streamed exactly once each, in order, even across preemptions.
            Assert.Equal(runs[i].Tokens, runs[i].Chunks.Where(c => c.TokenId != GenerationChunk.NoToken).Select(c => c.TokenId));
            Assert.Equal(runs[i].Result.Text, string.Concat(runs[i].Chunks.Select(c => c.Text)));
        }
        SchedulerMetrics m = scheduler.GetMetrics();
        Assert.True(m.Preemptions > 0, "expected preemptions");
        Assert.Equal(m.Preemptions, runs.Sum(r => r.Result.Usage.Preemptions));
        Assert.Equal(0, m.KvBlocksUsed);
    }

    [Fact]
    public async Task Preemption_with_seeded_sampling_keeps_the_same_tokens_as_running_alone()
    {
        var sampling = new SamplingParams(Temperature: 1.0f, TopK: 0, TopP: 1f, MinP: 0f, Seed: 11);
        int[][] prompts = [.. Enumerable.Range(0, 4).Select(i => Prompt(30 + i, 6))];
        int[][] alone = new int[4][];
        for (int i = 0; i < 4; i++)
        {
            var (_, solo) = Create(context: 48, blockCount: 64);
            await using (solo) alone[i] = (await CollectAsync(solo.Submit(new GenerationRequest($"s{i}", prompts[i], 14, sampling)))).Tokens;
        }

        var (model, scheduler) = Create(context: 48, blockCount: 12);
        await using var _ = scheduler;
        model.Pause();
        var warm = scheduler.Submit(Greedy("warm", Prompt(99, 2), 1));
        await WaitForStepsAsync(model);
        var handles = prompts.Select((p, i) => scheduler.Submit(new GenerationRequest($"r{i}", p, 14, sampling))).ToArray();
        model.Resume();
        Run[] runs = await Task.WhenAll(handles.Select(CollectAsync));
        await CollectAsync(warm);

        Assert.True(scheduler.GetMetrics().Preemptions > 0, "expected preemptions");
        for (int i = 0; i < 4; i++) Assert.Equal(alone[i], runs[i].Tokens);
    }

    [Fact]
    public async Task Seeded_request_gives_the_same_tokens_alone_and_inside_a_full_batch()
    {
        var sampling = new SamplingParams(Temperature: 0.9f, Seed: 1234);
        int[] prompt = Prompt(77, 7);
        var (_, solo) = Create(blockCount: 256);
        int[] alone;
        await using (solo) alone = (await CollectAsync(solo.Submit(new GenerationRequest("alone", prompt, 20, sampling)))).Tokens;

        var (model, scheduler) = Create(new SchedulerOptions { MaxBatchSequences = 16 }, blockCount: 256);
        await using var _ = scheduler;
        model.Pause();
        var warm = scheduler.Submit(Greedy("warm", Prompt(99, 2), 1));
        await WaitForStepsAsync(model);
        var others = Enumerable.Range(0, 14).Select(i => scheduler.Submit(new GenerationRequest($"o{i}", Prompt(200 + i, 3 + i % 5), 20, sampling with { Seed = (ulong)i }))).ToList();
        var mine = scheduler.Submit(new GenerationRequest("mine", prompt, 20, sampling));
        model.Resume();

        Run run = await CollectAsync(mine);
        await Task.WhenAll(others.Select(CollectAsync));
        await CollectAsync(warm);

        Assert.Equal(alone, run.Tokens);
        Assert.Equal(1234UL, run.Result.Seed);
        Assert.Contains(model.Steps, s => s.Sequences >= 15);
    }

    [Fact]
    public async Task Cancel_ends_the_request_and_frees_its_blocks()
    {
        var (model, scheduler) = Create();
        await using var _ = scheduler;
        model.Pause();
        var handle = scheduler.Submit(Greedy("c", Prompt(3, 10), 40));
        await WaitForStepsAsync(model);
        handle.Cancel();
        model.Resume();

        Run run = await CollectAsync(handle);

        Assert.Equal(FinishReason.Cancelled, run.Result.FinishReason);
        Assert.True(run.Tokens.Length < 40);
        SchedulerMetrics m = scheduler.GetMetrics();
        Assert.Equal(0, m.KvBlocksUsed);
        Assert.Equal(1, m.Cancelled);
        // Cancelled in the first step: the loop must not run a second step for it.
        Assert.Single(model.Steps);
    }

    [Fact]
    public async Task Cancellation_token_cancels_running_and_waiting_requests()
    {
        var (model, scheduler) = Create(new SchedulerOptions { MaxBatchSequences = 1 });
        await using var _ = scheduler;
        model.Pause();
        using var runningCts = new CancellationTokenSource();
        using var waitingCts = new CancellationTokenSource();
        var running = scheduler.Submit(Greedy("run", Prompt(1, 4), 40), runningCts.Token);
        await WaitForStepsAsync(model);
        var waiting = scheduler.Submit(Greedy("wait", Prompt(2, 4), 40), waitingCts.Token); // only one sequence may run
        var survivor = scheduler.Submit(Greedy("ok", Prompt(3, 4), 3));
        waitingCts.Cancel();
        runningCts.Cancel();
        model.Resume();

        Assert.Equal(FinishReason.Cancelled, (await CollectAsync(running)).Result.FinishReason);
        Run w = await CollectAsync(waiting);
        Assert.Equal(FinishReason.Cancelled, w.Result.FinishReason);
        Assert.Empty(w.Tokens);
        Assert.Null(w.Result.Usage.QueueTime); // never admitted
        Assert.Equal(model.ReferenceGreedy(Prompt(3, 4), 3), (await CollectAsync(survivor)).Tokens);
        Assert.Equal(0, scheduler.GetMetrics().KvBlocksUsed);
    }

    [Fact]
    public async Task Already_cancelled_token_cancels_before_any_work()
    {
        var (model, scheduler) = Create();
        await using var _ = scheduler;
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        Run run = await CollectAsync(scheduler.Submit(Greedy("x", Prompt(1, 4), 5), cts.Token));

        Assert.Equal(FinishReason.Cancelled, run.Result.FinishReason);
        Assert.Empty(model.Steps);
    }

    [Fact]
    public async Task Full_queue_refuses_at_once_with_a_retriable_error()
    {
        var (model, scheduler) = Create(new SchedulerOptions { MaxQueuedRequests = 2, MaxQueuedPromptTokens = 1000 });
        await using var _ = scheduler;
        model.Pause();
        var running = scheduler.Submit(Greedy("run", Prompt(1, 4), 2));
        await WaitForStepsAsync(model); // the loop is inside Forward: new submissions stay queued
        var q1 = scheduler.Submit(Greedy("q1", Prompt(2, 4), 2));
        var q2 = scheduler.Submit(Greedy("q2", Prompt(3, 4), 2));

        var ex = Assert.Throws<SchedulerOverloadedException>(() => scheduler.Submit(Greedy("q3", Prompt(4, 4), 2)));
        Assert.True(ex.IsRetriable);
        Assert.Equal(QueueLimit.Requests, ex.Limit);
        Assert.Equal(1, scheduler.GetMetrics().Refused);

        model.Resume();
        foreach (var h in new[] { running, q1, q2 }) Assert.Equal(FinishReason.Length, (await CollectAsync(h)).Result.FinishReason);
        // Once the queue has drained, the same request is taken.
        Assert.Equal(FinishReason.Length, (await CollectAsync(scheduler.Submit(Greedy("q3", Prompt(4, 4), 2)))).Result.FinishReason);
    }

    [Fact]
    public async Task Queued_prompt_token_bound_refuses_with_its_limit()
    {
        var (model, scheduler) = Create(new SchedulerOptions { MaxQueuedRequests = 10, MaxQueuedPromptTokens = 10 });
        await using var _ = scheduler;
        model.Pause();
        var running = scheduler.Submit(Greedy("run", Prompt(1, 4), 2));
        await WaitForStepsAsync(model);
        var q1 = scheduler.Submit(Greedy("q1", Prompt(2, 6), 2));

        var ex = Assert.Throws<SchedulerOverloadedException>(() => scheduler.Submit(Greedy("q2", Prompt(3, 6), 2)));
        Assert.Equal(QueueLimit.PromptTokens, ex.Limit);
        Assert.Equal(10, ex.LimitValue);
        model.Resume();
        await CollectAsync(running);
        await CollectAsync(q1);
    }

    [Fact]
    public async Task Prompt_that_leaves_no_room_is_refused_with_both_counts()
    {
        var (_, scheduler) = Create(context: 64, blockCount: 8); // 8 × 4 = 32 slots cap the context
        await using var __ = scheduler;
        Assert.Equal(32, scheduler.ContextLength);

        var ex = Assert.Throws<ContextLengthExceededException>(() => scheduler.Submit(Greedy("big", Prompt(1, 32), 4)));
        Assert.Equal(32, ex.PromptTokens);
        Assert.Equal(32, ex.ContextLength);
        Assert.Contains("32", ex.Message);
    }

    [Fact]
    public async Task Generation_stops_at_the_context_length()
    {
        var (model, scheduler) = Create(context: 20, blockCount: 16);
        await using var _ = scheduler;
        int[] prompt = Prompt(9, 15);

        Run run = await CollectAsync(scheduler.Submit(Greedy("ctx", prompt, 1000)));

        Assert.Equal(FinishReason.Length, run.Result.FinishReason);
        Assert.Equal(5, run.Tokens.Length);
        Assert.Equal(model.ReferenceGreedy(prompt, 1000), run.Tokens);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public async Task Bad_requests_are_rejected_with_argument_errors(int maxTokens)
    {
        var (_, scheduler) = Create();
        await using var __ = scheduler;
        Assert.Throws<ArgumentException>(() => scheduler.Submit(Greedy("m", Prompt(1, 4), maxTokens)));
        Assert.Throws<ArgumentException>(() => scheduler.Submit(Greedy("e", [], 4)));
        Assert.Throws<ArgumentException>(() => scheduler.Submit(Greedy("v", [1, 32], 4)));
        Assert.Throws<ArgumentException>(() => scheduler.Submit(Greedy("n", [1, -5], 4)));
        var nan = Assert.Throws<ArgumentException>(() => scheduler.Submit(new GenerationRequest("t", [1, 2], 4, new SamplingParams(Temperature: float.NaN))));
        Assert.Equal("Temperature", nan.ParamName);
        Assert.Throws<ArgumentException>(() => scheduler.Submit(Greedy("s", [1, 2], 4, [""])));
        Assert.Equal(0, scheduler.GetMetrics().Refused);
    }

    [Fact]
    public async Task Model_failure_fails_requests_in_flight_and_faults_the_scheduler()
    {
        var (model, scheduler) = Create();
        await using var _ = scheduler;
        model.ThrowOnCall = 3;
        model.Pause();
        var a = scheduler.Submit(Greedy("a", Prompt(1, 4), 10));
        await WaitForStepsAsync(model);
        var b = scheduler.Submit(Greedy("b", Prompt(2, 4), 10));
        model.Resume();

        Run ra = await CollectAsync(a), rb = await CollectAsync(b);

        foreach (Run r in new[] { ra, rb })
        {
            Assert.Equal(FinishReason.Error, r.Result.FinishReason);
            var step = Assert.IsType<ModelStepException>(r.Result.Error);
            Assert.Equal(2, step.Step);
            Assert.Contains("injected device fault", step.Message);
        }
        Assert.Equal(SchedulerState.Faulted, scheduler.State);
        var refused = Assert.Throws<SchedulerUnavailableException>(() => scheduler.Submit(Greedy("c", Prompt(3, 4), 2)));
        Assert.Equal(SchedulerState.Faulted, refused.State);
        Assert.IsType<ModelStepException>(refused.InnerException);
        Assert.Equal(2, scheduler.GetMetrics().Failed);
    }

    [Fact]
    public async Task Non_finite_logits_fail_only_their_request_with_a_clear_error_and_the_device_stays_ready()
    {
        var (model, scheduler) = Create();
        await using var _ = scheduler;
        model.NonFiniteToken = 29;
        model.Pause();
        var warm = scheduler.Submit(Greedy("warm", Prompt(99, 2), 1));
        await WaitForStepsAsync(model);
        var poisonedGreedy = scheduler.Submit(Greedy("nan-greedy", [1, 2, 29], 5));
        var poisonedSampled = scheduler.Submit(new GenerationRequest("nan-sampled", [3, 29], 5, new SamplingParams(Temperature: 0.8f, Seed: 1)));
        int[] good = Prompt(4, 5);
        var healthy = scheduler.Submit(Greedy("good", good, 5));
        model.Resume();

        Run greedy = await CollectAsync(poisonedGreedy), sampled = await CollectAsync(poisonedSampled), ok = await CollectAsync(healthy);
        await CollectAsync(warm);

        foreach (Run bad in new[] { greedy, sampled })
        {
            Assert.Equal(FinishReason.Error, bad.Result.FinishReason);
            var nan = Assert.IsType<NonFiniteLogitsException>(bad.Result.Error);
            Assert.Contains("--check-tensors", nan.Message);
            Assert.Empty(bad.Result.TokenIds); // no garbage token was taken
        }
        Assert.Equal(model.ReferenceGreedy(good, 5), ok.Result.TokenIds);
        Assert.Equal(SchedulerState.Accepting, scheduler.State);
        var m = scheduler.GetMetrics();
        Assert.Equal(2, m.Failed);
        Assert.Equal(0, m.KvBlocksUsed);
    }

    [Fact]
    public async Task A_request_whose_decoding_throws_fails_alone()
    {
        var (model, scheduler) = Create();
        await using var _ = scheduler;
        model.Pause();
        var warm = scheduler.Submit(Greedy("warm", Prompt(99, 2), 1));
        await WaitForStepsAsync(model);
        int[] good = Prompt(4, 5);
        var poisoned = scheduler.Submit(Greedy("bad", [1, 2, 31], 5)); // 31 = the fake decoder's poison id
        var healthy = scheduler.Submit(Greedy("good", good, 5));
        model.Resume();

        Run bad = await CollectAsync(poisoned), ok = await CollectAsync(healthy);
        await CollectAsync(warm);

        Assert.Equal(FinishReason.Error, bad.Result.FinishReason);
        Assert.Contains("poison", bad.Result.Error!.Message);
        Assert.Equal(model.ReferenceGreedy(good, 5), ok.Tokens);
        Assert.Equal(SchedulerState.Accepting, scheduler.State);
        Assert.Equal(FinishReason.Length, (await CollectAsync(scheduler.Submit(Greedy("next", good, 2)))).Result.FinishReason);
        Assert.Equal(1, scheduler.GetMetrics().Failed);
    }

    [Fact]
    public async Task Stop_string_spanning_token_boundaries_ends_the_generation_before_it()
    {
        var (model, scheduler) = Create();
        await using var _ = scheduler;
        int[] prompt = Prompt(21, 6);
        int[] reference = model.ReferenceGreedy(prompt, 12);
        string full = string.Concat(reference.Select(FakeDecoder.Piece));
        // Second character of token 4 through the first of token 6: spans two boundaries.
        string stop = full.Substring(9, 4);
        int expectedEnd = full.IndexOf(stop, StringComparison.Ordinal);

        Run run = await CollectAsync(scheduler.Submit(Greedy("s", prompt, 12, ["never-there", stop])));

        Assert.Equal(FinishReason.Stop, run.Result.FinishReason);
        Assert.Equal(stop, run.Result.MatchedStop);
        Assert.Equal(full[..expectedEnd], run.Result.Text);
        Assert.Equal(run.Result.Text, string.Concat(run.Chunks.Select(c => c.Text)));
        Assert.Equal(reference[..((expectedEnd + stop.Length + 1) / 2)], run.Tokens); // generation ends on the token completing the stop
    }

    [Fact]
    public async Task Held_back_partial_stop_is_released_when_generation_ends_by_length()
    {
        var (model, scheduler) = Create();
        await using var _ = scheduler;
        int[] prompt = Prompt(22, 6);
        int[] reference = model.ReferenceGreedy(prompt, 4);
        string full = string.Concat(reference.Select(FakeDecoder.Piece));
        string stop = full[^1] + "\u0001"; // the last character begins a stop string that never completes

        Run run = await CollectAsync(scheduler.Submit(Greedy("h", prompt, 4, [stop])));

        Assert.Equal(FinishReason.Length, run.Result.FinishReason);
        Assert.Equal(full, run.Result.Text);
        Assert.Equal(GenerationChunk.NoToken, run.Chunks[^1].TokenId);
        Assert.Equal(full[^1].ToString(), run.Chunks[^1].Text);
    }

    [Fact]
    public async Task End_of_generation_token_ends_the_request_without_being_emitted()
    {
        var probe = new FakeStepModel();
        int[] prompt = Prompt(23, 6);
        int[] reference = probe.ReferenceGreedy(prompt, 10);
        int eos = reference[3];
        int cut = Array.IndexOf(reference, eos);
        var (model, scheduler) = Create(endOfGeneration: eos);
        await using var _ = scheduler;

        Run run = await CollectAsync(scheduler.Submit(Greedy("e", prompt, 10)));

        Assert.Equal(FinishReason.EndOfGeneration, run.Result.FinishReason);
        Assert.Equal(reference[..cut], run.Tokens);
        Assert.Equal(model.ReferenceGreedy(prompt, 10, eos), run.Tokens);
        Assert.DoesNotContain(eos, run.Chunks.Select(c => c.TokenId));
    }

    [Fact]
    public async Task Drain_refuses_new_work_finishes_what_it_can_then_cancels_the_rest()
    {
        var (model, scheduler) = Create();
        await using var _ = scheduler;
        model.PauseAtCall = 3; // by then the short request is done and the long one is mid-way
        var shortOne = scheduler.Submit(Greedy("short", Prompt(1, 4), 2));
        var longOne = scheduler.Submit(Greedy("long", Prompt(2, 4), 50));
        await WaitForStepsAsync(model, 3);

        Task drained = scheduler.DrainAsync(TimeSpan.FromDays(2));
        var refused = Assert.Throws<SchedulerUnavailableException>(() => scheduler.Submit(Greedy("late", Prompt(3, 4), 2)));
        Assert.Equal(SchedulerState.Draining, refused.State);
        Assert.Equal(FinishReason.Length, (await CollectAsync(shortOne)).Result.FinishReason);
        Assert.False(drained.IsCompleted, "the long request is still running");

        // A second call shortens the grace to nothing: the long request is cancelled after the current step.
        Task now = scheduler.DrainAsync(TimeSpan.Zero);
        model.Resume();
        await now.WaitAsync(HangGuard);
        await drained.WaitAsync(HangGuard);
        Run cut = await CollectAsync(longOne);
        Assert.Equal(FinishReason.Cancelled, cut.Result.FinishReason);
        Assert.InRange(cut.Tokens.Length, 1, 49);
        Assert.Equal(0, scheduler.GetMetrics().KvBlocksUsed);
    }

    [Fact]
    public async Task Drain_grace_runs_on_the_scheduler_clock_and_cancels_after_the_step_that_crosses_it()
    {
        var (model, scheduler) = Create();
        await using var _ = scheduler;
        int[] prompt = Prompt(2, 4);
        model.Pause();
        var longOne = scheduler.Submit(Greedy("long", prompt, 50));
        await WaitForStepsAsync(model); // inside step 1, before it moves the clock: the grace starts at submission time

        Task drained = scheduler.DrainAsync(5.5 * model.StepTime);
        model.Resume();
        await drained.WaitAsync(HangGuard);

        // Steps end at 1, 2, … 6 step-times; the check after step 5 (5 < 5.5) lets it go on, the one after step 6 cancels.
        Run cut = await CollectAsync(longOne);
        Assert.Equal(FinishReason.Cancelled, cut.Result.FinishReason);
        Assert.Equal(model.ReferenceGreedy(prompt, 6), cut.Tokens);
        Assert.Equal(6 * model.StepTime, cut.Result.Usage.TotalTime);
        Assert.Equal(6, model.Steps.Count);
        Assert.Equal(0, scheduler.GetMetrics().KvBlocksUsed);
    }

    [Fact]
    public async Task Queue_time_and_time_to_first_token_count_the_steps_spent_waiting()
    {
        var (model, scheduler) = Create(new SchedulerOptions { MaxBatchSequences = 1 });
        await using var _ = scheduler;
        model.Pause();
        var first = scheduler.Submit(Greedy("first", Prompt(1, 4), 3));
        await WaitForStepsAsync(model);
        var second = scheduler.Submit(Greedy("second", Prompt(2, 4), 2)); // same clock time; only one sequence may run
        model.Resume();

        GenerationUsage a = (await CollectAsync(first)).Result.Usage, b = (await CollectAsync(second)).Result.Usage;

        Assert.Equal((TimeSpan.Zero, model.StepTime, 3 * model.StepTime), (a.QueueTime, a.TimeToFirstToken, a.TotalTime));
        // The second waits the first's three steps, then takes one step per token.
        Assert.Equal(3 * model.StepTime, b.QueueTime);
        Assert.Equal(4 * model.StepTime, b.TimeToFirstToken);
        Assert.Equal(model.StepTime, b.TimePerOutputToken);
        Assert.Equal(5 * model.StepTime, b.TotalTime);
    }

    [Fact]
    public async Task Dispose_cancels_work_in_flight_and_refuses_new_requests()
    {
        var (model, scheduler) = Create();
        model.PauseAtCall = 2;
        var handle = scheduler.Submit(Greedy("x", Prompt(1, 4), 50));
        await WaitForStepsAsync(model, 2);

        Task disposing = scheduler.DisposeAsync().AsTask();
        model.Resume();
        await disposing.WaitAsync(HangGuard);

        Run run = await CollectAsync(handle);
        Assert.Equal(FinishReason.Cancelled, run.Result.FinishReason);
        Assert.Equal(2, run.Tokens.Length);
        Assert.Equal(SchedulerState.Disposed, scheduler.State);
        Assert.Throws<SchedulerUnavailableException>(() => scheduler.Submit(Greedy("y", Prompt(1, 4), 2)));
    }

    [Fact]
    public void Bad_options_and_model_limits_are_rejected()
    {
        var model = new FakeStepModel();
        var decoder = new FakeDecoder(32);
        Assert.Equal("MaxBatchTokens", Assert.Throws<ArgumentException>(() => new Scheduler(model, decoder, new SchedulerOptions { MaxBatchTokens = 0 })).ParamName);
        Assert.Equal("MaxQueuedRequests", Assert.Throws<ArgumentException>(() => new Scheduler(model, decoder, new SchedulerOptions { MaxQueuedRequests = 0 })).ParamName);
        Assert.Throws<ArgumentException>(() => new Scheduler(new FakeStepModel(blockCount: 0), decoder));
    }

    [Fact]
    public async Task Batch_limits_are_capped_by_the_model()
    {
        var model = new FakeStepModel(maxBatchTokens: 8, maxBatchSequences: 2);
        await using var scheduler = new Scheduler(model, new FakeDecoder(32), new SchedulerOptions { MaxBatchTokens = 256, MaxBatchSequences = 32 }, model.Clock);
        Assert.Equal(8, scheduler.MaxBatchTokens);
        Assert.Equal(2, scheduler.MaxBatchSequences);

        var handles = Enumerable.Range(0, 4).Select(i => scheduler.Submit(Greedy($"r{i}", Prompt(i, 11), 3))).ToArray();
        Run[] runs = await Task.WhenAll(handles.Select(CollectAsync));

        for (int i = 0; i < 4; i++) Assert.Equal(model.ReferenceGreedy(Prompt(i, 11), 3), runs[i].Tokens);
        Assert.All(model.Steps, s => Assert.True(s.Tokens <= 8 && s.Sequences <= 2, $"{s.Tokens} tokens / {s.Sequences} sequences"));
    }

    [Fact]
    public async Task Greedy_rows_come_back_as_device_argmax_and_sampled_rows_as_logits_in_one_step()
    {
        var sampling = new SamplingParams(Temperature: 0.9f, TopK: 0, TopP: 1f, MinP: 0f, Seed: 5);
        int[] greedyPrompt = Prompt(3, 6), sampledPrompt = Prompt(4, 5);

        // The sampled request alone: the reference for the same request sharing steps with a greedy one.
        int[] sampledAlone;
        {
            var (aloneModel, alone) = Create();
            await using var __ = alone;
            sampledAlone = (await CollectAsync(alone.Submit(new GenerationRequest("b", sampledPrompt, 8, sampling)))).Tokens;
            Assert.All(aloneModel.Steps, s => Assert.Equal(0, s.GreedyRows));
        }

        var (model, scheduler) = Create();
        await using var _ = scheduler;
        model.Pause();
        var warm = scheduler.Submit(Greedy("warm", Prompt(100, 3), 2));
        await WaitForStepsAsync(model);
        var greedy = scheduler.Submit(Greedy("a", greedyPrompt, 8));
        var sampled = scheduler.Submit(new GenerationRequest("b", sampledPrompt, 8, sampling));
        model.Resume();
        Run g = await CollectAsync(greedy), b = await CollectAsync(sampled);
        await CollectAsync(warm);

        Assert.Equal(model.ReferenceGreedy(greedyPrompt, 8), g.Tokens);
        Assert.Equal(sampledAlone, b.Tokens);
        // A step carried both kinds: the greedy row as one id, the sampled row as logits.
        Assert.Contains(model.Steps, s => s.GreedyRows >= 1 && s.LogitRows > s.GreedyRows);
        Assert.All(model.Steps, s => Assert.True(s.GreedyRows <= s.LogitRows));
    }

    [Fact]
    public async Task Greedy_with_a_repeat_penalty_still_gets_logits()
    {
        var (model, scheduler) = Create();
        await using var _ = scheduler;
        var penalized = SamplingParams.Greedy with { RepeatPenalty = 1.5f };
        Run run = await CollectAsync(scheduler.Submit(new GenerationRequest("p", Prompt(2, 5), 6, penalized)));

        Assert.Equal(6, run.Tokens.Length);
        Assert.All(model.Steps, s => Assert.Equal(0, s.GreedyRows)); // the penalty depends on history: the host must see logits
    }
}
