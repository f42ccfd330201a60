using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;

namespace Serving.Host.Tests.Models;

/// <summary>
/// On the Cpu backend a request gives the same tokens whether it runs alone or inside a full batch: the kernels'
/// per-row arithmetic does not depend on the batch, and the sampler's RNG is per request.
/// </summary>
[Collection("tiny")]
[Trait("Category", "Slow")]
public sealed class BatchReproducibilityTests(TinyModelFixture fixture)
{
    private static readonly string[] Prompts =
    [
        "Once upon a time", "The little dog ran", "In a land far away, there lived", "She opened the door and",
        "Tom and Lily went to the park", "One day,", "The sun was shining brightly over the", "A big red ball",
    ];

    /// <summary>
    /// The real model behind a gate the test holds shut while it submits, so which requests share a step is decided
    /// by the test, not by how fast the scheduler thread happens to start. Records the widest step it ran.
    /// </summary>
    private sealed class GatedStepModel(IStepModel inner) : IStepModel
    {
        private readonly ManualResetEventSlim _open = new(true);
        private readonly SemaphoreSlim _heldAtGate = new(0);
        private int _widestStep;

        public int VocabSize => inner.VocabSize;
        public int ContextLength => inner.ContextLength;
        public int KvBlockSize => inner.KvBlockSize;
        public int KvBlockCount => inner.KvBlockCount;
        public int MaxBatchTokens => inner.MaxBatchTokens;
        public int MaxBatchSequences => inner.MaxBatchSequences;

        /// <summary>Most sequences one step has carried.</summary>
        public int WidestStep => Volatile.Read(ref _widestStep);

        public void Close() => _open.Reset();

        public void Open() => _open.Set();

        /// <summary>Completes once a step is waiting at the closed gate (a hang guard fails the test instead of waiting forever).</summary>
        public async Task StepHeldAsync() =>
            Assert.True(await _heldAtGate.WaitAsync(TimeSpan.FromSeconds(60)), "the scheduler never ran a step");

        public void Forward(StepBatch batch, Span<float> logits, Span<int> greedyTokens)
        {
            if (!_open.IsSet)
            {
                _heldAtGate.Release();
                if (!_open.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("The test never opened the gate.");
            }
            if (batch.SequenceCount > _widestStep) Volatile.Write(ref _widestStep, batch.SequenceCount); // loop thread only
            inner.Forward(batch, logits, greedyTokens);
        }
    }

    [Theory]
    [InlineData(0f)]   // greedy
    [InlineData(0.9f)] // sampled with a seed
    public async Task SameTokens_AloneOrInAFullBatch(float temperature)
    {
        using var loaded = LoadedModel.Open(fixture.PathOf(DataType.Q8_0), fixture.Device,
            new ModelOptions { MaxBatchTokens = 64, MaxBatchSequences = Prompts.Length, KvCacheTokens = 2048 });
        var decoder = new TokenizerDecoder(loaded.Tokenizer, ignoreEndOfGeneration: true);
        GenerationRequest Request(int i) => new($"r{i}", loaded.Tokenizer.Encode(Prompts[i], true), 12,
            new SamplingParams(Temperature: temperature, Seed: 42 + (ulong)i));

        var model = new GatedStepModel(loaded.Model);
        await using var scheduler = new Scheduler(model, decoder,
            new SchedulerOptions { MaxBatchSequences = Prompts.Length, MaxBatchTokens = 64, EnablePrefixCaching = false });
        var alone = new List<IReadOnlyList<int>>();
        for (int i = 0; i < Prompts.Length; i++)
            alone.Add((await scheduler.Submit(Request(i)).Completion).TokenIds);
        Assert.Equal(1, model.WidestStep);

        // The first request's prefill is held at the gate while the other seven are queued: from the next step on
        // they all run together, whatever the thread timing.
        model.Close();
        var handles = new GenerationHandle[Prompts.Length];
        handles[0] = scheduler.Submit(Request(0));
        await model.StepHeldAsync();
        for (int i = 1; i < Prompts.Length; i++) handles[i] = scheduler.Submit(Request(i));
        model.Open();
        var together = await Task.WhenAll(handles.Select(h => h.Completion));

        Assert.True(scheduler.GetMetrics().MeanBatchSequences > 1, "the concurrent requests never shared a step");
        Assert.Equal(Prompts.Length, model.WidestStep);
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(12, together[i].TokenIds.Count);
            Assert.Equal(alone[i], together[i].TokenIds);
        }
    }
}
