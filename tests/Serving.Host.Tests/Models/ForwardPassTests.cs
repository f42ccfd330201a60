using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Models;

namespace Serving.Host.Tests.Models;

/// <summary>The whole tiny model on the Cpu backend against a float64 reference, and batch invariance.</summary>
[Collection("tiny")]
[Trait("Category", "Slow")]
public sealed class ForwardPassTests(TinyModelFixture fixture)
{
    private static readonly int[] Prompt = [1, 450, 4996, 17354, 1701, 432, 17204];

    /// <summary>
    /// Limits on normalized MSE of the logits: f32 weights differ from the reference only by f32 rounding;
    /// quantized weights are dequantized exactly by the reference, but the backend quantizes activations to
    /// q8 blocks for the integer dot products (as llama.cpp does), which adds ~1e-4 relative error per matmul. The
    /// reference rounds cached k and v to half precision when the model's cache is f16 (the default), as KvWrite does.
    /// </summary>
    [Theory]
    [InlineData(DataType.F32, DataType.F32, 1e-8)]
    [InlineData(DataType.F32, DataType.F16, 1e-8)]
    [InlineData(DataType.F16, DataType.F16, 1e-6)]
    [InlineData(DataType.Q8_0, DataType.F16, 5e-3)]
    [InlineData(DataType.Q4_0, DataType.F16, 5e-3)]
    public void Forward_MatchesFloat64Reference(DataType type, DataType kvCache, double limit)
    {
        using var file = GgufFile.Open(fixture.PathOf(type));
        using var model = LlamaModel.Load(file, fixture.Device, new ModelOptions { MaxBatchTokens = 16, MaxBatchSequences = 2, KvCacheTokens = 256, KvCacheType = kvCache });
        Assert.Equal(kvCache, model.KvCacheType);
        var batch = new StepBatch(16, 2, model.MaxBlocksPerSequence);
        AddSequence(batch, Prompt, firstPosition: 0, firstBlock: 0, model.KvBlockSize, allLogits: true);
        var logits = new float[Prompt.Length * model.VocabSize];
        model.Forward(batch, logits);

        var expected = ReferenceLlama.Forward(file, model.Config, Prompt, model.KvCacheType);
        double nmse = ReferenceLlama.NormalizedError(logits, expected, model.VocabSize);
        Assert.True(nmse < limit, $"{type}: normalized MSE {nmse:E3} ≥ {limit:E1}");
    }

    [Fact]
    public void ChunkedPrefill_AndBatching_GiveBitIdenticalLogits()
    {
        using var file = GgufFile.Open(fixture.PathOf(DataType.Q8_0));
        using var model = LlamaModel.Load(file, fixture.Device, new ModelOptions { MaxBatchTokens = 16, MaxBatchSequences = 2, KvCacheTokens = 256 });
        int V = model.VocabSize, bs = model.KvBlockSize;
        var batch = new StepBatch(16, 2, model.MaxBlocksPerSequence);

        // Whole prompt in one step: the last row's logits.
        AddSequence(batch, Prompt, 0, 0, bs, allLogits: false);
        var whole = new float[V];
        model.Forward(batch, whole);

        // The same prompt in two chunks (3 + 4 tokens), in fresh blocks.
        batch.Clear();
        AddSequence(batch, Prompt[..3], 0, 4, bs, allLogits: false);
        model.Forward(batch, new float[V]);
        batch.Clear();
        AddSequence(batch, Prompt[3..], 3, 4, bs, allLogits: false);
        var chunked = new float[V];
        model.Forward(batch, chunked);
        Assert.Equal(whole, chunked);

        // The same prompt next to another sequence in one step.
        batch.Clear();
        AddSequence(batch, [1, 9038, 2501, 263, 931], 0, 8, bs, allLogits: false);
        AddSequence(batch, Prompt, 0, 12, bs, allLogits: false);
        var both = new float[2 * V];
        model.Forward(batch, both);
        Assert.Equal(whole, both.AsSpan(V, V).ToArray());
    }

    [Fact]
    public void Forward_RejectsBadBatchesWithoutTouchingTheCache()
    {
        using var file = GgufFile.Open(fixture.PathOf(DataType.Q8_0));
        using var model = LlamaModel.Load(file, fixture.Device, new ModelOptions { MaxBatchTokens = 8, MaxBatchSequences = 1, KvCacheTokens = 64 });
        var batch = new StepBatch(8, 1, model.MaxBlocksPerSequence);
        AddSequence(batch, [1, 99999], 0, 0, model.KvBlockSize, allLogits: false);
        var e = Assert.Throws<ArgumentException>(() => model.Forward(batch, new float[model.VocabSize]));
        Assert.Contains("outside vocab", e.Message);
        batch.Clear();
        AddSequence(batch, [1, 2], 0, 0, model.KvBlockSize, allLogits: true);
        Assert.Throws<ArgumentException>(() => model.Forward(batch, new float[model.VocabSize])); // logits too small
    }

    [Fact]
    public void GreedyRows_ReturnTheArgmaxOfTheLogitsTheyWouldHaveReturned()
    {
        using var file = GgufFile.Open(fixture.PathOf(DataType.Q8_0));
        using var model = LlamaModel.Load(file, fixture.Device, new ModelOptions { MaxBatchTokens = 16, MaxBatchSequences = 3, KvCacheTokens = 256 });
        int V = model.VocabSize, bs = model.KvBlockSize;
        int[] other = [1, 9038, 2501, 263, 931];
        var batch = new StepBatch(16, 3, model.MaxBlocksPerSequence);

        // Every row's logits: the oracle.
        AddSequence(batch, Prompt, 0, 0, bs, allLogits: false);
        AddSequence(batch, other, 0, 4, bs, allLogits: false);
        AddSequence(batch, Prompt[..4], 0, 8, bs, allLogits: false);
        var all = new float[3 * V];
        model.Forward(batch, all);
        int[] expected = [.. Enumerable.Range(0, 3).Select(r => ArgMax(all.AsSpan(r * V, V)))];

        // The same step with rows 0 and 2 greedy: their ids come back, row 1's logits alone fill the logits span.
        batch.Clear();
        AddSequence(batch, Prompt, 0, 0, bs, allLogits: false, greedy: true);
        AddSequence(batch, other, 0, 4, bs, allLogits: false);
        AddSequence(batch, Prompt[..4], 0, 8, bs, allLogits: false, greedy: true);
        Assert.Equal(2, batch.GreedyCount);
        var sampled = new float[V];
        int[] ids = [-1, -1, -1];
        model.Forward(batch, sampled, ids);
        Assert.Equal(expected[0], ids[0]);
        Assert.Equal(-1, ids[1]); // a row that returned logits leaves its entry alone
        Assert.Equal(expected[2], ids[2]);
        Assert.Equal(all.AsSpan(V, V).ToArray(), sampled);

        // All greedy (the decode steps of greedy requests): no logits at all.
        batch.Clear();
        AddSequence(batch, Prompt, 0, 0, bs, allLogits: false, greedy: true);
        AddSequence(batch, other, 0, 4, bs, allLogits: false, greedy: true);
        model.Forward(batch, [], ids);
        Assert.Equal(expected[..2], ids[..2]);

        // A greedy row needs room for its id.
        Assert.Throws<ArgumentException>(() => model.Forward(batch, []));
    }

    private static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
        return best;
    }

    /// <summary>Appends a sequence whose blocks are firstBlock, firstBlock+1, … (enough for its positions).</summary>
    internal static void AddSequence(StepBatch batch, int[] tokens, int firstPosition, int firstBlock, int blockSize, bool allLogits, bool greedy = false)
    {
        int s = batch.SequenceCount++;
        int lastPos = firstPosition + tokens.Length - 1;
        for (int b = 0; b <= lastPos / blockSize; b++)
            batch.BlockTables[s * batch.MaxBlocksPerSequence + b] = firstBlock + b;
        for (int i = 0; i < tokens.Length; i++)
        {
            int pos = firstPosition + i;
            int slot = (firstBlock + pos / blockSize) * blockSize + pos % blockSize;
            bool wantLogits = allLogits || i == tokens.Length - 1;
            batch.AddToken(tokens[i], pos, s, slot, wantLogits, greedy && wantLogits);
        }
    }
}
