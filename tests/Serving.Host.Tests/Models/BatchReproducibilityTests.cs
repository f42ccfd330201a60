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
public sealed class BatchReproducibilityTests(TinyModelFixture fixture)
{
    private static readonly string[] Prompts =
    [
        "Once upon a time", "The little dog ran", "In a land far away, there lived", "She opened the door and",
        "Tom and Lily went to the park", "One day,", "The sun was shining brightly over the", "A big red ball",
    ];

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

        await using var scheduler = new Scheduler(loaded.Model, decoder,
            new SchedulerOptions { MaxBatchSequences = Prompts.Length, MaxBatchTokens = 64, EnablePrefixCaching = false });
        var alone = new List<IReadOnlyList<int>>();
        for (int i = 0; i < Prompts.Length; i++)
            alone.Add((await scheduler.Submit(Request(i)).Completion).TokenIds);

        var handles = Enumerable.Range(0, Prompts.Length).Select(i => scheduler.Submit(Request(i))).ToArray();
        var together = await Task.WhenAll(handles.Select(h => h.Completion));
        Assert.True(scheduler.GetMetrics().MeanBatchSequences > 1, "the concurrent requests never shared a step");
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(12, together[i].TokenIds.Count);
            Assert.Equal(alone[i], together[i].TokenIds);
        }
    }
}
