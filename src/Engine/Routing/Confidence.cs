namespace Serving.Engine.Routing;

/// <summary>A model's confidence over the tokens it generated so far: mean ln p(token) and mean entropy (nats).</summary>
public readonly record struct Confidence(int Tokens, double MeanLogProb, double MeanEntropy)
{
    /// <summary>This confidence with one more token scored.</summary>
    public Confidence Add(double logProb, double entropy) => new(Tokens + 1,
        MeanLogProb + (logProb - MeanLogProb) / (Tokens + 1),
        MeanEntropy + (entropy - MeanEntropy) / (Tokens + 1));
}
