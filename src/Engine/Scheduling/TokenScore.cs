namespace Serving.Engine.Scheduling;

/// <summary>
/// How sure a model was of one token: ln p(token) and the entropy H = −Σ p ln p of the softmax of its logit row
/// (temperature 1, no penalties), computed in double with the row's maximum subtracted. Legend: V = vocabulary size.
/// </summary>
public static class TokenScore
{
    /// <summary>(ln p(<paramref name="token"/>), H) of the distribution softmax(<paramref name="logits"/>) ([V]).</summary>
    public static (float LogProb, float Entropy) Of(ReadOnlySpan<float> logits, int token)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(token);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(token, logits.Length);
        float max = float.NegativeInfinity;
        foreach (float x in logits) if (x > max) max = x;
        double sum = 0, weighted = 0;
        foreach (float x in logits)
        {
            double e = Math.Exp(x - max);
            sum += e;
            weighted += e * (x - max);
        }
        double logZ = Math.Log(sum); // ln Σ exp(x − max)
        double logProb = logits[token] - max - logZ;
        double entropy = logZ - weighted / sum; // H = ln Z − E[x − max]
        return ((float)logProb, (float)Math.Max(0, entropy));
    }
}
