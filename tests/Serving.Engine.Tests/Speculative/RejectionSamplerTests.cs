using Serving.Engine.Sampling;
using Serving.Engine.Speculative;

namespace Serving.Engine.Tests.Speculative;

public class RejectionSamplerTests
{
    /// <summary>Pearson's statistic of <paramref name="counts"/> against <paramref name="p"/> (cells with p = 0 must be empty).</summary>
    internal static double ChiSquare(int[] counts, ReadOnlySpan<float> p, int n)
    {
        double chi = 0;
        for (int i = 0; i < counts.Length; i++)
        {
            if (p[i] <= 0f)
            {
                Assert.True(counts[i] == 0, $"token {i} has target probability 0 but was emitted {counts[i]} times");
                continue;
            }
            double expected = n * (double)p[i];
            chi += (counts[i] - expected) * (counts[i] - expected) / expected;
        }
        return chi;
    }

    [Fact]
    public void Draft_then_accept_or_residual_is_distributed_as_the_target()
    {
        // A draft that is badly wrong: mass where the target has little, none where the target has some.
        float[] p = [0.30f, 0.25f, 0.20f, 0.10f, 0.10f, 0.05f, 0f, 0f];
        float[] q = [0.05f, 0.10f, 0.05f, 0.40f, 0f, 0.10f, 0.20f, 0.10f];
        var rng = new Sampler(new SamplingParams(Seed: 20231130));
        const int n = 200_000;
        var counts = new int[p.Length];
        var draftCounts = new int[p.Length];
        int accepted = 0;
        for (int i = 0; i < n; i++)
        {
            int x = rng.Draw(q);
            draftCounts[x]++;
            int token;
            if (RejectionSampler.Accepts(p[x], q[x], rng.NextUniform())) { token = x; accepted++; }
            else token = RejectionSampler.Residual(p, q, rng.NextUniform());
            counts[token]++;
        }
        // 5 degrees of freedom (6 cells with mass): the 99.99th percentile is 25.7; a fixed seed makes this exact.
        Assert.True(ChiSquare(counts, p, n) < 25.7, $"chi-square {ChiSquare(counts, p, n):0.0} of the output against the target");
        // The test can fail: the draft's own tokens are far from the target (and a rule that always accepted would emit them).
        double draftVsTarget = 0;
        for (int i = 0; i < p.Length; i++)
            draftVsTarget += p[i] > 0 ? (draftCounts[i] - n * (double)p[i]) * (draftCounts[i] - n * (double)p[i]) / (n * (double)p[i]) : 0;
        Assert.True(draftVsTarget > 1000, $"draft vs target chi-square {draftVsTarget:0.0}");
        // Acceptance probability is Σ min(p, q) = 0.05+0.10+0.05+0.10+0+0.05 = 0.35.
        Assert.InRange(accepted / (double)n, 0.34, 0.36);
    }

    [Fact]
    public void Identical_distributions_always_accept()
    {
        float[] p = [0.5f, 0.25f, 0.25f];
        var rng = new Sampler(new SamplingParams(Seed: 3));
        for (int i = 0; i < 10_000; i++)
        {
            int x = rng.Draw(p);
            Assert.True(RejectionSampler.Accepts(p[x], p[x], rng.NextUniform()));
        }
    }

    [Fact]
    public void One_hot_distributions_accept_exactly_the_argmax()
    {
        float[] p = [0f, 1f, 0f];
        float[] q = [0f, 0f, 1f];
        Assert.False(RejectionSampler.Accepts(p[2], q[2], 0.0));
        Assert.Equal(1, RejectionSampler.Residual(p, q, 0.999));
        Assert.True(RejectionSampler.Accepts(p[1], p[1], 0.999));
    }

    [Fact]
    public void Sampler_probabilities_match_its_own_draws()
    {
        // The distribution rejection sampling compares is the one Sample draws from (top-k, top-p, min-p, temperature).
        var logits = new float[16];
        for (int i = 0; i < logits.Length; i++) logits[i] = MathF.Sin(i * 1.7f) * 3f;
        var parameters = new SamplingParams(Temperature: 0.7f, TopK: 10, TopP: 0.9f, MinP: 0.02f, Seed: 11);
        var probs = new float[logits.Length];
        new Sampler(parameters).Probabilities(logits, [], probs);
        Assert.Equal(1.0, probs.Sum(), 4);
        var sampler = new Sampler(parameters);
        const int n = 100_000;
        var counts = new int[logits.Length];
        for (int i = 0; i < n; i++) counts[sampler.Sample(logits, [])]++;
        int cells = probs.Count(x => x > 0);
        Assert.InRange(cells, 3, 10);
        // At most 9 degrees of freedom: the 99.99th percentile is 33.7.
        Assert.True(ChiSquare(counts, probs, n) < 33.7, $"chi-square {ChiSquare(counts, probs, n):0.0}");
    }

    [Theory]
    [InlineData(0.0, 0.25, 0)]
    [InlineData(0.5, 0.25, 1)]
    [InlineData(0.8, 0.25, 3)]
    [InlineData(0.95, 0.1, 8)]
    [InlineData(0.3, 0.5, 0)]
    public void Draft_length_maximizes_tokens_per_cost(double rate, double cost, int expected) =>
        Assert.Equal(expected, DraftLength.Best(rate, cost, 8));

    [Fact]
    public void Draft_length_follows_the_measured_rate_and_probes_when_idle()
    {
        var length = new DraftLength(6, 0.25);
        Assert.Equal(1, length.Next()); // prior 0.5
        for (int i = 0; i < 20; i++) length.Record(4, 4);
        Assert.True(length.Next() >= 4, $"k {length.Next()} after full acceptance");
        for (int i = 0; i < 30; i++) length.Record(2, 0);
        int zeros = 0;
        for (int i = 0; i < DraftLength.ProbeEvery - 1; i++) zeros += length.Next() == 0 ? 1 : 0;
        Assert.Equal(DraftLength.ProbeEvery - 1, zeros);
        Assert.Equal(1, length.Next()); // the probe
        Assert.Equal(4, new DraftLength(4, 0.25, adaptive: false).Next());
    }
}
