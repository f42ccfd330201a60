namespace Serving.Engine.Speculative;

/// <summary>
/// The acceptance rule of speculative sampling (Leviathan et al. 2023, "Fast Inference from Transformers via
/// Speculative Decoding"; Chen et al. 2023): a draft token x drawn from the draft's distribution q is kept with
/// probability min(1, p(x)/q(x)), where p is the target's distribution; on rejection the token is drawn from
/// norm(max(0, p − q)). The emitted token is then distributed exactly as p, whatever q is. When all k draft tokens
/// are kept, one more (the bonus) is drawn from the target's distribution after them.
/// Uniform draws come from the caller (the request's seeded <see cref="Sampling.Sampler"/>), so a run is reproducible.
/// </summary>
public static class RejectionSampler
{
    /// <summary>
    /// Whether a draft token with target probability <paramref name="p"/> and draft probability <paramref name="q"/>
    /// is kept, given a uniform draw <paramref name="u"/> in [0, 1): u &lt; min(1, p/q). A token the draft could not
    /// have drawn (q = 0) is kept only when the target allows it (p &gt; 0).
    /// </summary>
    public static bool Accepts(float p, float q, double u) => q <= 0f ? p > 0f : u * q < p;

    /// <summary>
    /// Draws the replacement for a rejected draft token from norm(max(0, p − q)) ([V] each) with a uniform draw
    /// <paramref name="u"/> in [0, 1). If that residual has no mass (p ≤ q everywhere: only possible through rounding,
    /// since a rejection needs p(x) &lt; q(x) somewhere and both sum to 1), it draws from p itself.
    /// </summary>
    public static int Residual(ReadOnlySpan<float> p, ReadOnlySpan<float> q, double u)
    {
        if (q.Length < p.Length) throw new ArgumentException($"q holds {q.Length} entries; p {p.Length}", nameof(q));
        double total = 0;
        for (int i = 0; i < p.Length; i++)
        {
            float d = p[i] - q[i];
            if (d > 0f) total += d;
        }
        if (total <= 0) return DrawFrom(p, u);
        double target = u * total, acc = 0;
        int last = -1;
        for (int i = 0; i < p.Length; i++)
        {
            float d = p[i] - q[i];
            if (d <= 0f) continue;
            acc += d;
            last = i;
            if (target < acc) return i;
        }
        return last;
    }

    /// <summary>Draws an index from the non-negative weights <paramref name="weights"/> with a uniform <paramref name="u"/> in [0, 1).</summary>
    public static int DrawFrom(ReadOnlySpan<float> weights, double u)
    {
        double total = 0;
        foreach (float w in weights) if (w > 0f) total += w;
        double target = u * total, acc = 0;
        int last = 0;
        for (int i = 0; i < weights.Length; i++)
        {
            if (weights[i] <= 0f) continue;
            acc += weights[i];
            last = i;
            if (target < acc) return i;
        }
        return last;
    }
}
