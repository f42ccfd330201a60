namespace Serving.Engine.Routing;

/// <summary>
/// The parameters of <see cref="TierPolicy"/> (serve's <c>--auto-probe-tokens</c>, <c>--auto-min-logprob</c>,
/// <c>--auto-max-entropy</c>, and <c>--tpot-ms</c> for shedding; docs/rpc.md §tiers).
/// </summary>
public sealed record TierPolicyOptions
{
    /// <summary>Tokens the cheaper tier generates, held back from the client, before its confidence is judged. Default 8;
    /// 0 never probes (an auto request is answered by the cheapest tier that can hold it).</summary>
    public int ProbeTokens { get; init; } = 8;

    /// <summary>Lowest mean ln p(token) over the probe for the cheaper tier to keep the request. Default −2.5 nats
    /// (a geometric-mean token probability of about 8 %); −∞ disables this test.</summary>
    public double MinMeanLogProb { get; init; } = -2.5;

    /// <summary>Highest mean entropy of the cheaper tier's distributions over the probe, nats. Default 4.0; +∞ disables this test.</summary>
    public double MaxMeanEntropy { get; init; } = 4.0;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field.</summary>
    public void Validate()
    {
        if (ProbeTokens is < 0 or > 256) throw new ArgumentException($"ProbeTokens {ProbeTokens} out of range [0, 256]", nameof(ProbeTokens));
        if (double.IsNaN(MinMeanLogProb) || MinMeanLogProb > 0) throw new ArgumentException($"MinMeanLogProb {MinMeanLogProb} must be ≤ 0 (a log-probability)", nameof(MinMeanLogProb));
        if (double.IsNaN(MaxMeanEntropy) || MaxMeanEntropy < 0) throw new ArgumentException($"MaxMeanEntropy {MaxMeanEntropy} must be ≥ 0", nameof(MaxMeanEntropy));
    }
}
