using Serving.Engine.Sampling;

namespace Serving.Engine.Tests.Sampling;

public class SamplerTests
{
    private static float[] RandomLogits(int seed, int vocab)
    {
        var rng = new Random(seed); // test data only; the sampler never uses System.Random
        var logits = new float[vocab];
        for (int i = 0; i < vocab; i++) logits[i] = (float)(rng.NextDouble() * 10 - 5);
        return logits;
    }

    private static float[] LogProbs(params double[] p) => [.. p.Select(x => (float)Math.Log(x))];

    private static double[] Frequencies(Sampler sampler, float[] logits, int draws)
    {
        var counts = new double[logits.Length];
        for (int i = 0; i < draws; i++) counts[sampler.Sample(logits, [])]++;
        return [.. counts.Select(c => c / draws)];
    }

    private static SamplingParams Pure(float temperature = 1f) => new(Temperature: temperature, TopK: 0, TopP: 1f, MinP: 0f, Seed: 5);

    [Fact]
    public void Greedy_is_argmax_with_the_first_index_on_ties()
    {
        var sampler = new Sampler(SamplingParams.Greedy);
        Assert.Equal(1, sampler.Sample([0f, 3f, 1f, 3f], []));
        Assert.Equal(2, sampler.Sample([float.NaN, -1f, 2f, float.NaN], []));
        Assert.Equal(0, sampler.Sample([float.NegativeInfinity, float.NegativeInfinity], []));
    }

    [Fact]
    public void Top_k_of_one_equals_greedy_whatever_the_temperature()
    {
        for (int seed = 0; seed < 20; seed++)
        {
            float[] logits = RandomLogits(seed, 500);
            var topOne = new Sampler(new SamplingParams(Temperature: 5f, TopK: 1, Seed: (ulong)seed));
            Assert.Equal(Sampler.ArgMax(logits), topOne.Sample(logits, []));
        }
    }

    [Fact]
    public void Same_seed_gives_the_same_tokens_and_another_seed_differs()
    {
        float[] logits = RandomLogits(1, 1000);
        int[] Draw(ulong seed)
        {
            var s = new Sampler(new SamplingParams(Temperature: 1.5f, TopK: 0, TopP: 1f, MinP: 0f, Seed: seed));
            return [.. Enumerable.Range(0, 64).Select(_ => s.Sample(logits, []))];
        }
        Assert.Equal(Draw(42), Draw(42));
        Assert.NotEqual(Draw(42), Draw(43));
    }

    [Fact]
    public void Unseeded_sampler_reports_the_seed_that_reproduces_it()
    {
        float[] logits = RandomLogits(2, 300);
        var first = new Sampler(new SamplingParams(Temperature: 1f, TopK: 0, TopP: 1f, MinP: 0f));
        int[] a = [.. Enumerable.Range(0, 32).Select(_ => first.Sample(logits, []))];
        var again = new Sampler(new SamplingParams(Temperature: 1f, TopK: 0, TopP: 1f, MinP: 0f, Seed: first.Seed));
        int[] b = [.. Enumerable.Range(0, 32).Select(_ => again.Sample(logits, []))];
        Assert.Equal(a, b);
    }

    [Fact]
    public void Draws_follow_the_softmax_distribution()
    {
        double[] f = Frequencies(new Sampler(Pure()), LogProbs(0.5, 0.3, 0.2), 20_000);
        Assert.InRange(f[0], 0.48, 0.52);
        Assert.InRange(f[1], 0.28, 0.32);
        Assert.InRange(f[2], 0.18, 0.22);
    }

    [Fact]
    public void Temperature_flattens_the_distribution()
    {
        // At T = 2 the weights become sqrt(p): 0.707, 0.548, 0.447 → 0.415, 0.322, 0.263.
        double[] f = Frequencies(new Sampler(Pure(2f)), LogProbs(0.5, 0.3, 0.2), 20_000);
        Assert.InRange(f[0], 0.395, 0.435);
        Assert.InRange(f[1], 0.302, 0.342);
        Assert.InRange(f[2], 0.243, 0.283);
    }

    [Fact]
    public void Top_p_keeps_the_smallest_set_reaching_p()
    {
        // 0.5 < 0.6 ≤ 0.8: tokens 0 and 1 survive, renormalized to 0.625 / 0.375.
        double[] f = Frequencies(new Sampler(Pure() with { TopP = 0.6f }), LogProbs(0.5, 0.3, 0.2), 10_000);
        Assert.Equal(0, f[2]);
        Assert.InRange(f[0], 0.60, 0.65);
    }

    [Fact]
    public void Min_p_drops_tokens_below_a_fraction_of_the_best()
    {
        // Threshold 0.5 × 0.5 = 0.25: token 2 (0.2) goes.
        double[] f = Frequencies(new Sampler(Pure() with { MinP = 0.5f }), LogProbs(0.5, 0.3, 0.2), 10_000);
        Assert.Equal(0, f[2]);
        Assert.True(f[1] > 0.3);
    }

    [Fact]
    public void Top_k_keeps_exactly_the_k_best()
    {
        float[] logits = RandomLogits(3, 2000);
        int[] best = [.. logits.Select((l, i) => (l, i)).OrderByDescending(x => x.l).Take(5).Select(x => x.i).Order()];
        // A huge temperature makes the kept five nearly uniform, so all of them show up.
        var sampler = new Sampler(Pure(1000f) with { TopK = 5 });
        var seen = new SortedSet<int>();
        for (int i = 0; i < 2000; i++) seen.Add(sampler.Sample(logits, []));
        Assert.Equal(best, seen);
    }

    [Fact]
    public void Top_k_ties_keep_the_lower_ids()
    {
        float[] logits = [1f, 5f, 5f, 5f, 0f];
        var sampler = new Sampler(Pure(1000f) with { TopK = 2 });
        var seen = new SortedSet<int>();
        for (int i = 0; i < 500; i++) seen.Add(sampler.Sample(logits, []));
        Assert.Equal([1, 2], seen);
    }

    [Fact]
    public void Repeat_penalty_divides_positive_and_multiplies_negative_logits()
    {
        var penalized = new Sampler(SamplingParams.Greedy with { RepeatPenalty = 2f });
        Assert.Equal(1, penalized.Sample([2f, 1.9f, -1f], [0])); // 2 / 2 = 1 < 1.9
        Assert.Equal(1, penalized.Sample([-1f, -1.5f], [0]));    // −1 × 2 = −2 < −1.5
        Assert.Equal(0, new Sampler(SamplingParams.Greedy).Sample([2f, 1.9f, -1f], [0]));
    }

    [Fact]
    public void Repeat_penalty_counts_each_distinct_token_once_within_the_window()
    {
        var once = new Sampler(SamplingParams.Greedy with { RepeatPenalty = 1.5f });
        Assert.Equal(0, once.Sample([3f, 1.9f], [0, 0, 0])); // 3 / 1.5 = 2 > 1.9 (three times would give 0.89)
        var window = new Sampler(SamplingParams.Greedy with { RepeatPenalty = 10f, RepeatLastN = 1 });
        Assert.Equal(0, window.Sample([3f, 2.9f], [0, 1])); // only the last token (1) is in the window
        Assert.Throws<ArgumentException>(() => window.Sample([3f, 2.9f], [0, 7]));
    }

    [Theory]
    [InlineData("Temperature", float.NaN, 40, 0.95f, 0.05f, 1f, 64)]
    [InlineData("Temperature", -0.1f, 40, 0.95f, 0.05f, 1f, 64)]
    [InlineData("Temperature", float.PositiveInfinity, 40, 0.95f, 0.05f, 1f, 64)]
    [InlineData("TopK", 0.8f, -1, 0.95f, 0.05f, 1f, 64)]
    [InlineData("TopP", 0.8f, 40, 0f, 0.05f, 1f, 64)]
    [InlineData("TopP", 0.8f, 40, 1.5f, 0.05f, 1f, 64)]
    [InlineData("TopP", 0.8f, 40, float.NaN, 0.05f, 1f, 64)]
    [InlineData("MinP", 0.8f, 40, 0.95f, -0.1f, 1f, 64)]
    [InlineData("MinP", 0.8f, 40, 0.95f, 1.1f, 1f, 64)]
    [InlineData("RepeatPenalty", 0.8f, 40, 0.95f, 0.05f, 0f, 64)]
    [InlineData("RepeatPenalty", 0.8f, 40, 0.95f, 0.05f, float.NaN, 64)]
    [InlineData("RepeatLastN", 0.8f, 40, 0.95f, 0.05f, 1f, -1)]
    public void Out_of_range_parameters_are_rejected_with_the_field_name(string field, float t, int k, float p, float minP, float penalty, int lastN)
    {
        var ex = Assert.Throws<ArgumentException>(() => new Sampler(new SamplingParams(t, k, p, minP, penalty, lastN)));
        Assert.Equal(field, ex.ParamName);
    }

    [Fact]
    public void Defaults_follow_llama_cpp_and_are_valid()
    {
        var d = new SamplingParams();
        Assert.Equal((0.8f, 40, 0.95f, 0.05f, 1.0f, 64), (d.Temperature, d.TopK, d.TopP, d.MinP, d.RepeatPenalty, d.RepeatLastN));
        d.Validate();
        Assert.Throws<ArgumentException>(() => new Sampler(SamplingParams.Greedy).Sample([], []));
    }

    [Fact]
    public void Full_vocabulary_path_and_large_k_path_agree()
    {
        // TopK = 0 sorts everything; TopK = V − 1 goes through the heap: with the same seed the draws must match
        // unless the dropped worst token is drawn, which at these logits has negligible mass.
        float[] logits = RandomLogits(4, 400);
        logits[Array.IndexOf(logits, logits.Min())] = -60f;
        var all = new Sampler(Pure() with { Seed = 9 });
        var heap = new Sampler(Pure() with { Seed = 9, TopK = 399 });
        for (int i = 0; i < 200; i++) Assert.Equal(all.Sample(logits, []), heap.Sample(logits, []));
    }

    [Theory]
    [InlineData(40)]
    [InlineData(0)]
    public void Sampling_allocates_nothing_after_the_first_call(int topK)
    {
        var sampler = new Sampler(new SamplingParams(TopK: topK, RepeatPenalty: 1.1f, Seed: 1));
        float[] logits = RandomLogits(5, 5000);
        int[] recent = [1, 2, 3, 2];
        sampler.Sample(logits, recent); // sizes the scratch buffers
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 50; i++) sampler.Sample(logits, recent);
        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }

    [Theory]
    [InlineData(0f, 40, 1f, 64, true)]     // temperature 0
    [InlineData(0.8f, 1, 1f, 64, true)]    // top-k 1
    [InlineData(0f, 40, 1.1f, 0, true)]    // a penalty over no tokens
    [InlineData(0f, 40, 1.1f, 64, false)]  // a penalty: the result depends on history
    [InlineData(0.8f, 40, 1f, 64, false)]  // a draw
    public void IsArgmax_only_when_the_pick_is_the_plain_argmax(float temperature, int topK, float penalty, int lastN, bool expected)
    {
        var sampler = new Sampler(new SamplingParams(temperature, topK, 0.95f, 0.05f, penalty, lastN, Seed: 1));
        Assert.Equal(expected, sampler.IsArgmax);
        if (!expected) return;
        float[] logits = [0.5f, 2f, float.NaN, 2f, -1f];
        Assert.Equal(Sampler.ArgMax(logits), sampler.Sample(logits, [1, 3, 1]));
    }
}
