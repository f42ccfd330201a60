using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Sampling;
using Serving.Engine.Scheduling;
using Serving.Engine.Speculative;

namespace Serving.Host.Tests.Models;

/// <summary>
/// Speculative decoding on the real model (Cpu backend, synthetic tiny models): greedy output with a draft is the
/// target's alone, for several prompts in one full batch, with a self-draft (the target's first layers, from the same
/// file) and with a lower-precision copy of the target as draft; and no KV block is left in either cache.
/// </summary>
[Collection("tiny")]
[Trait("Category", "Slow")]
public sealed class SpeculativeModelTests(TinyModelFixture fixture)
{
    private static readonly string[] Prompts =
    [
        "Once upon a time", "The little dog ran", "In a land far away, there lived", "She opened the door and",
        "Tom and Lily went to the park", "One day,", "The sun was shining brightly over the", "A big red ball",
    ];

    private const int MaxTokens = 16;

    /// <summary>The target behind a gate the test holds shut while it submits, so all requests share the steps after the first.</summary>
    private sealed class GatedStepModel(IStepModel inner) : IStepModel
    {
        private readonly ManualResetEventSlim _open = new(true);
        private readonly SemaphoreSlim _held = new(0);
        private int _widest;

        public int VocabSize => inner.VocabSize;
        public int ContextLength => inner.ContextLength;
        public int KvBlockSize => inner.KvBlockSize;
        public int KvBlockCount => inner.KvBlockCount;
        public int MaxBatchTokens => inner.MaxBatchTokens;
        public int MaxBatchSequences => inner.MaxBatchSequences;
        public int WidestStep => Volatile.Read(ref _widest);

        public void Close() => _open.Reset();

        public void Open() => _open.Set();

        public async Task StepHeldAsync() => Assert.True(await _held.WaitAsync(TimeSpan.FromSeconds(60)), "the scheduler never ran a step");

        public void Forward(StepBatch batch, Span<float> logits, Span<int> greedyTokens)
        {
            if (!_open.IsSet)
            {
                _held.Release();
                if (!_open.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("The test never opened the gate.");
            }
            if (batch.SequenceCount > _widest) Volatile.Write(ref _widest, batch.SequenceCount);
            inner.Forward(batch, logits, greedyTokens);
        }
    }

    private static ModelOptions Options(int layerLimit = 0, DataType? weightType = null) =>
        new() { MaxBatchTokens = 128, MaxBatchSequences = Prompts.Length, KvCacheTokens = 2048, LayerLimit = layerLimit, WeightType = weightType };

    [Theory]
    [InlineData("q8_0", "self", 3, 4)]    // the target's first 3 of 6 layers
    [InlineData("q8_0", "self", 1, 2)]    // a poor self-draft: mostly rejected
    [InlineData("f32", "q8_0", 0, 4)]     // a lower-precision copy of the target
    [InlineData("f16", "q4_0", 0, 3)]
    [InlineData("f32", "self:q4_0", 0, 4)] // a q4_0 copy of the target made at load: no second file
    [InlineData("f16", "self:q8_0", 2, 2)] // its first 2 layers, re-encoded to q8_0
    public async Task Greedy_output_is_the_targets_alone_in_a_full_batch(string targetType, string draftType, int draftLayers, int k)
    {
        string targetPath = fixture.PathOf(Type(targetType));
        using var target = LoadedModel.Open(targetPath, fixture.Device, Options());
        bool self = draftType.StartsWith("self", StringComparison.Ordinal);
        DataType? reencode = draftType.StartsWith("self:", StringComparison.Ordinal) ? Type(draftType[5..]) : null;
        using var draft = LoadedModel.Open(self ? targetPath : fixture.PathOf(Type(draftType)), fixture.Device, Options(draftLayers, reencode));
        if (reencode is { } t) Assert.True(draft.Model.WeightBytes < target.Model.WeightBytes, $"the {t.Name()} copy is not smaller");
        var decoder = new TokenizerDecoder(target.Tokenizer, ignoreEndOfGeneration: true);
        GenerationRequest Request(int i) => new($"r{i}", target.Tokenizer.Encode(Prompts[i], true), MaxTokens, SamplingParams.Greedy);

        var alone = new List<IReadOnlyList<int>>();
        await using (var plain = new Scheduler(target.Model, decoder, new SchedulerOptions { MaxBatchSequences = Prompts.Length, MaxBatchTokens = 128 }))
            for (int i = 0; i < Prompts.Length; i++)
                alone.Add((await plain.Submit(Request(i)).Completion).TokenIds);

        var gated = new GatedStepModel(target.Model);
        await using var scheduler = new Scheduler(gated, decoder, new SchedulerOptions
        {
            MaxBatchSequences = Prompts.Length,
            MaxBatchTokens = 128,
            Speculative = new SpeculativeOptions { Draft = draft.Model, MaxDraftTokens = k, Adaptive = false },
        });
        gated.Close();
        var handles = new GenerationHandle[Prompts.Length];
        handles[0] = scheduler.Submit(Request(0));
        await gated.StepHeldAsync();
        for (int i = 1; i < Prompts.Length; i++) handles[i] = scheduler.Submit(Request(i));
        gated.Open();
        var together = await Task.WhenAll(handles.Select(h => h.Completion.WaitAsync(TimeSpan.FromMinutes(5))));

        Assert.Equal(Prompts.Length, gated.WidestStep);
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(FinishReason.Length, together[i].FinishReason);
            Assert.Equal(alone[i], together[i].TokenIds);
        }
        var m = scheduler.GetMetrics();
        Assert.True(m.DraftTokens > 0, "nothing was proposed");
        Assert.InRange(m.DraftAcceptedTokens, 0, m.DraftTokens);
        Assert.Equal(0, m.KvBlocksUsed);
        Assert.Equal(0, m.DraftKvBlocksUsed);
    }

    private static DataType Type(string name) => name switch
    {
        "f32" => DataType.F32,
        "f16" => DataType.F16,
        "q8_0" => DataType.Q8_0,
        "q4_0" => DataType.Q4_0,
        _ => throw new ArgumentException(name),
    };
}
