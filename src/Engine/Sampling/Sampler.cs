using System.Security.Cryptography;

namespace Serving.Engine.Sampling;

/// <summary>
/// Chooses tokens for one request (create one per request: it owns the RNG stream and scratch buffers).
/// Not thread-safe. Legend: V = vocabulary size, K = candidates kept after top-k.
/// </summary>
public sealed class Sampler
{
    private readonly SamplingParams _params;
    private Xoshiro256StarStar _rng;
    private float[]? _penalized;    // [V] logits after the repeat penalty; allocated on first penalized call
    private Candidate[]? _candidates; // [K] (or [V] when top-k is off); allocated on first non-greedy call
    private int[]? _recent;         // [RepeatLastN] sorted copy of recent ids, to penalize each distinct id once

    /// <summary>Creates a sampler; throws <see cref="ArgumentException"/> naming the bad field of <paramref name="parameters"/>.</summary>
    public Sampler(SamplingParams parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        parameters.Validate();
        _params = parameters;
        Seed = parameters.Seed ?? RandomSeed();
        _rng = new Xoshiro256StarStar(Seed);
    }

    /// <summary>The seed in use (the given one, or the random one picked when none was given), for reproducing a run.</summary>
    public ulong Seed { get; }

    /// <summary>The parameters this sampler applies.</summary>
    public SamplingParams Parameters => _params;

    /// <summary>
    /// True when <see cref="Sample"/> always returns the index of the largest logit (first on ties, NaN never wins)
    /// whatever the history and without drawing from the RNG: greedy (temperature 0 or top-k 1) with no repeat penalty.
    /// A caller may then have the device compute that index and skip the logits (the scheduler does).
    /// </summary>
    public bool IsArgmax => (_params.Temperature == 0f || _params.TopK == 1) && (_params.RepeatPenalty == 1f || _params.RepeatLastN == 0);

    /// <summary>
    /// Picks the next token from <paramref name="logits"/> ([V]). <paramref name="recentTokens"/> is the sequence so
    /// far (prompt and generated, oldest first); its last <see cref="SamplingParams.RepeatLastN"/> ids are penalized.
    /// NaN logits are treated as −∞. Throws <see cref="ArgumentException"/> on empty logits or a recent id outside [0, V).
    /// </summary>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> recentTokens)
    {
        if (logits.IsEmpty) throw new ArgumentException("Logits must not be empty.", nameof(logits));
        ReadOnlySpan<float> source = ApplyRepeatPenalty(logits, recentTokens);

        if (_params.Temperature == 0f || _params.TopK == 1) return ArgMax(source);

        int kept = Weigh(source, out double total);
        Span<Candidate> cands = _candidates!.AsSpan(0, kept);
        if (total == 0) return cands[0].Id; // nothing has any mass: behave like greedy
        double u = _rng.NextDouble() * total, acc = 0;
        for (int i = 0; i < kept; i++)
        {
            acc += cands[i].Weight;
            if (u < acc) return cands[i].Id;
        }
        return cands[kept - 1].Id; // rounding left u at the very end of the range
    }

    /// <summary>
    /// Writes into <paramref name="probabilities"/> ([V], cleared first) the distribution <see cref="Sample"/> draws
    /// from for these <paramref name="logits"/> and <paramref name="recentTokens"/>: the same chain (repeat penalty,
    /// top-k, top-p, min-p, temperature), normalized; one-hot at the argmax for greedy. Draws nothing from the RNG.
    /// Speculative decoding's rejection sampling needs the target's and the draft's distributions, not one draw.
    /// </summary>
    public void Probabilities(ReadOnlySpan<float> logits, ReadOnlySpan<int> recentTokens, Span<float> probabilities)
    {
        if (logits.IsEmpty) throw new ArgumentException("Logits must not be empty.", nameof(logits));
        if (probabilities.Length < logits.Length) throw new ArgumentException($"probabilities holds {probabilities.Length} entries; needs {logits.Length}", nameof(probabilities));
        ReadOnlySpan<float> source = ApplyRepeatPenalty(logits, recentTokens);
        probabilities.Clear();
        if (_params.Temperature == 0f || _params.TopK == 1)
        {
            probabilities[ArgMax(source)] = 1f;
            return;
        }
        int kept = Weigh(source, out double total);
        Span<Candidate> cands = _candidates!.AsSpan(0, kept);
        if (total == 0)
        {
            probabilities[cands[0].Id] = 1f;
            return;
        }
        for (int i = 0; i < kept; i++) probabilities[cands[i].Id] = (float)(cands[i].Weight / total);
    }

    /// <summary>A uniform draw in [0, 1) from this request's seeded RNG stream (speculative decoding's acceptance test).</summary>
    public double NextUniform() => _rng.NextDouble();

    /// <summary>
    /// Draws an index from <paramref name="weights"/> (non-negative, any positive total; need not be normalized) with
    /// this request's seeded RNG. All-zero weights give the first index. One RNG draw.
    /// </summary>
    public int Draw(ReadOnlySpan<float> weights)
    {
        double total = 0;
        foreach (float w in weights) total += w;
        double u = _rng.NextDouble() * total, acc = 0;
        int last = 0;
        for (int i = 0; i < weights.Length; i++)
        {
            if (weights[i] <= 0f) continue;
            acc += weights[i];
            last = i;
            if (u < acc) return i;
        }
        return last;
    }

    /// <summary>
    /// Fills the candidate buffer with the kept candidates, best first, each weighted by its probability after
    /// temperature (unnormalized); returns how many are kept and their total weight (0 when nothing has any mass,
    /// then the first candidate stands alone).
    /// </summary>
    private int Weigh(ReadOnlySpan<float> source, out double total)
    {
        int k = _params.TopK <= 0 || _params.TopK >= source.Length ? source.Length : _params.TopK;
        if (_candidates is null || _candidates.Length < k) _candidates = new Candidate[k];
        Span<Candidate> cands = _candidates.AsSpan(0, k);
        if (k == source.Length) FillAll(source, cands); else SelectTopK(source, cands);
        cands.Sort(BetterFirst);

        float maxLogit = cands[0].Logit;
        if (float.IsNegativeInfinity(maxLogit))
        {
            total = 0;
            return 1;
        }

        // Probabilities before temperature, as llama.cpp's top-p and min-p see them (temperature comes last).
        double sum = 0;
        for (int i = 0; i < cands.Length; i++)
        {
            float p = MathF.Exp(cands[i].Logit - maxLogit);
            cands[i].Weight = p;
            sum += p;
        }

        int kept = cands.Length;
        if (_params.TopP < 1f)
        {
            double target = _params.TopP * sum, cumulative = 0;
            for (int i = 0; i < kept; i++)
            {
                cumulative += cands[i].Weight;
                if (cumulative >= target) { kept = i + 1; break; }
            }
        }
        if (_params.MinP > 0f)
        {
            // Candidates are sorted, so the survivors are a prefix; the top token always survives.
            float threshold = _params.MinP * cands[0].Weight;
            int i = 1;
            while (i < kept && cands[i].Weight >= threshold) i++;
            kept = i;
        }

        float invTemperature = 1f / _params.Temperature;
        total = 0;
        for (int i = 0; i < kept; i++)
        {
            float w = MathF.Exp((cands[i].Logit - maxLogit) * invTemperature);
            cands[i].Weight = w;
            total += w;
        }
        return kept;
    }

    /// <summary>Index of the largest value, first on ties; NaN never wins (all-NaN gives 0).</summary>
    internal static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        float bestValue = float.NegativeInfinity;
        bool found = false;
        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i];
            if (v > bestValue || (!found && !float.IsNaN(v))) { best = i; bestValue = v; found = true; }
        }
        return best;
    }

    private ReadOnlySpan<float> ApplyRepeatPenalty(ReadOnlySpan<float> logits, ReadOnlySpan<int> recentTokens)
    {
        int n = Math.Min(_params.RepeatLastN, recentTokens.Length);
        if (_params.RepeatPenalty == 1f || n == 0) return logits;

        ReadOnlySpan<int> window = recentTokens[^n..];
        _recent ??= new int[_params.RepeatLastN];
        Span<int> ids = _recent.AsSpan(0, n);
        window.CopyTo(ids);
        ids.Sort();
        if ((uint)ids[0] >= (uint)logits.Length || (uint)ids[^1] >= (uint)logits.Length)
            throw new ArgumentException($"Recent token ids must lie in [0, {logits.Length}); got {(ids[0] < 0 ? ids[0] : ids[^1])}.", nameof(recentTokens));

        if (_penalized is null || _penalized.Length < logits.Length) _penalized = new float[logits.Length];
        Span<float> penalized = _penalized.AsSpan(0, logits.Length);
        logits.CopyTo(penalized);
        float penalty = _params.RepeatPenalty;
        for (int i = 0; i < ids.Length; i++)
        {
            if (i > 0 && ids[i] == ids[i - 1]) continue; // llama.cpp penalizes each distinct token once
            ref float l = ref penalized[ids[i]];
            l = l <= 0f ? l * penalty : l / penalty;
        }
        return penalized;
    }

    private static void FillAll(ReadOnlySpan<float> source, Span<Candidate> cands)
    {
        for (int i = 0; i < source.Length; i++) cands[i] = new Candidate(Clean(source[i]), i);
    }

    /// <summary>Keeps the K best in a min-heap (root = worst kept): O(V log K), no sort of the whole vocabulary.</summary>
    private static void SelectTopK(ReadOnlySpan<float> source, Span<Candidate> heap)
    {
        int k = heap.Length;
        for (int i = 0; i < k; i++)
        {
            heap[i] = new Candidate(Clean(source[i]), i);
            SiftUp(heap, i);
        }
        for (int i = k; i < source.Length; i++)
        {
            float v = Clean(source[i]);
            // Later ids lose ties, so only a strictly larger logit displaces the worst kept one.
            if (v > heap[0].Logit)
            {
                heap[0] = new Candidate(v, i);
                SiftDown(heap, 0);
            }
        }
    }

    private static void SiftUp(Span<Candidate> heap, int i)
    {
        while (i > 0)
        {
            int parent = (i - 1) / 2;
            if (!Worse(heap[i], heap[parent])) break;
            (heap[i], heap[parent]) = (heap[parent], heap[i]);
            i = parent;
        }
    }

    private static void SiftDown(Span<Candidate> heap, int i)
    {
        while (true)
        {
            int left = 2 * i + 1, worst = i;
            if (left < heap.Length && Worse(heap[left], heap[worst])) worst = left;
            if (left + 1 < heap.Length && Worse(heap[left + 1], heap[worst])) worst = left + 1;
            if (worst == i) return;
            (heap[i], heap[worst]) = (heap[worst], heap[i]);
            i = worst;
        }
    }

    /// <summary>Total order used everywhere: higher logit is better, lower id wins ties.</summary>
    private static bool Worse(in Candidate a, in Candidate b) => a.Logit < b.Logit || (a.Logit == b.Logit && a.Id > b.Id);

    private static float Clean(float v) => float.IsNaN(v) ? float.NegativeInfinity : v;

    private static ulong RandomSeed()
    {
        Span<byte> bytes = stackalloc byte[8];
        RandomNumberGenerator.Fill(bytes);
        return BitConverter.ToUInt64(bytes);
    }

    private struct Candidate(float logit, int id)
    {
        public float Logit = logit;
        public int Id = id;
        public float Weight;
    }

    // A cached delegate: Sort with a struct IComparer boxes it and wraps it in a new delegate on every call.
    private static readonly Comparison<Candidate> BetterFirst = static (a, b) => Worse(b, a) ? -1 : Worse(a, b) ? 1 : 0;
}
