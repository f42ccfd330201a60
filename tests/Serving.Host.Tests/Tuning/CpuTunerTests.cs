using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Tuning;
using Serving.Host.Tests.Models;

namespace Serving.Host.Tests.Tuning;

/// <summary>
/// The tuner end to end on the real Cpu backend and the tiny model, in fast mode (a few seconds): every variant the
/// backend lists validates, the profile is complete and round-trips through the cache, and a model running the
/// chosen (or any other) variants computes the same logits bit for bit. Timings are never asserted (docs/testing.md).
/// </summary>
[Collection("tiny")]
public sealed class CpuTunerTests(TinyModelFixture fixture)
{
    [Fact]
    public void FastTuningOfTheTinyModelIsCompleteAndCached()
    {
        string path = fixture.PathOf(DataType.Q8_0);
        var shape = DeviceTuningShape(path);
        var key = ProfileCache.KeyFor(fixture.Device.Descriptor, fixture.Device.GetType().Assembly, DeviceOptions.Default, shape);
        var profile = Tuner.Tune(fixture.Device, path, key, new TuneOptions { Fast = true, PhaseLimit = TimeSpan.FromMinutes(2), MaxBatch = 8, MaxChunk = 32 });

        Assert.True(profile.BandwidthBytesPerSecond > 0);
        Assert.True(profile.PeakFlopsPerSecond > 0);
        var matmuls = profile.Ops.Where(o => o.Op == OpKind.MatMul).ToList();
        Assert.Equal(shape.Matrices.Count, matmuls.Count);
        foreach (var op in matmuls)
        {
            Assert.True(op.Checks.Count >= 2, op.Title);
            Assert.All(op.Checks, c => Assert.True(c.Usable && c.BitIdenticalToDefault == true, $"{op.Title} {c.Variant}: {c.Status}"));
            Assert.Equal([1, 2, 4, 8, 16], op.Chosen.Select(c => c.Batch));
        }
        Assert.Equal(1, profile.DecodeCurve[0].Batch);
        Assert.InRange(profile.Limits.MaxBatch, 1, 8);
        Assert.True(profile.Limits.TokenBudget > profile.Limits.MaxBatch);
        Assert.True(profile.PredictedDecodeTokensPerSecond > 0);

        string dir = Path.Combine(Path.GetTempPath(), "serving-tune-" + Guid.NewGuid().ToString("N"));
        try
        {
            var cache = new ProfileCache(dir);
            cache.Save(profile);
            var loaded = cache.TryLoad(key, out string? warning);
            Assert.Null(warning);
            Assert.Equal(profile.Choices, loaded!.Choices);
            Assert.Equal(profile.Limits, loaded.Limits);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void EveryMatMulVariantChosenGivesTheDefaultsLogitsBitForBit()
    {
        string path = fixture.PathOf(DataType.Q4_0);
        var shape = DeviceTuningShape(path);
        float[] reference = Logits(path, null);
        foreach (var variant in fixture.Device.GetVariants(OpKind.MatMul, DataType.Q4_0).Skip(1))
        {
            // Force this variant on every MatMul shape at every batch.
            var plan = new KernelPlan(shape.Matrices.Select(m => new KernelChoice(OpKind.MatMul, m.Type, m.Rows, m.Cols, 1, variant.Name)));
            Assert.Equal(shape.Matrices.Count, plan.NonDefaultCount(fixture.Device));
            Assert.True(reference.AsSpan().SequenceEqual(Logits(path, plan)), $"{variant.Name} changed the logits");
        }
    }

    private static ModelShape DeviceTuningShape(string path)
    {
        using var file = Engine.Gguf.GgufFile.Open(path);
        return ModelShape.FromGguf(file);
    }

    /// <summary>Logits of the last token of a 6-token prefill.</summary>
    private float[] Logits(string path, KernelPlan? plan)
    {
        using var loaded = LoadedModel.Open(path, fixture.Device, new ModelOptions { ContextLength = 64, MaxBatchSequences = 1, MaxBatchTokens = 16, Kernels = plan });
        var m = loaded.Model;
        var batch = new StepBatch(16, 1, m.MaxBlocksPerSequence);
        batch.SequenceCount = 1;
        for (int k = 0; k < m.MaxBlocksPerSequence; k++) batch.BlockTables[k] = k;
        int[] tokens = [1, 450, 4996, 17354, 1701, 432];
        for (int t = 0; t < tokens.Length; t++) batch.AddToken(tokens[t], t, 0, t, wantLogits: t == tokens.Length - 1);
        var logits = new float[m.VocabSize];
        m.Forward(batch, logits);
        return logits;
    }
}
