namespace Serving.Engine.Routing;

/// <summary>Where a request starts, and whether the tier it starts on is probed (its first tokens held back and judged).</summary>
/// <param name="Tier">Index of the tier (cheapest first).</param>
/// <param name="Reason">Why that tier (final unless <paramref name="Probe"/>).</param>
/// <param name="Probe">Hold back and score the first <see cref="TierPolicyOptions.ProbeTokens"/> tokens, then <see cref="TierPolicy.Judge"/>.</param>
public readonly record struct TierChoice(int Tier, TierReason Reason, bool Probe);

/// <summary>After a probe: keep the tier (and why), or escalate to <paramref name="Next"/>.</summary>
/// <param name="Escalate">Restart the request on <paramref name="Next"/>.</param>
/// <param name="Next">The tier to escalate to (when <paramref name="Escalate"/>).</param>
/// <param name="Reason">Why it stays (<see cref="TierReason.Confident"/>, <see cref="TierReason.Shed"/>) or why it moves (<see cref="TierReason.LowConfidence"/>).</param>
public readonly record struct TierVerdict(bool Escalate, int Next, TierReason Reason);

/// <summary>
/// The cascade policy of <c>model: "auto"</c> (docs/rpc.md §tiers). Tiers are ordered cheapest first (serve orders them
/// by weight bytes: what one decode step moves through memory). Decisions depend only on their arguments, so they are
/// tested without models.
/// <list type="number">
/// <item>Start: the cheapest tier at or above the request's <c>min_tier</c> whose context holds prompt + max_tokens
/// (reason <c>first</c> tier is probed; otherwise <c>min_tier</c> or <c>context</c>). When no tier holds it, the last one
/// whose context holds the prompt (generation then stops at the context, as on any tier).</item>
/// <item>Probe: unless the start is the last tier that fits, its first <see cref="TierPolicyOptions.ProbeTokens"/> tokens are
/// scored (ln p and entropy) and held back from the client.</item>
/// <item>Judge: mean ln p ≥ <see cref="TierPolicyOptions.MinMeanLogProb"/> and mean entropy ≤
/// <see cref="TierPolicyOptions.MaxMeanEntropy"/> keep the tier (<c>confident</c>). Otherwise the request escalates to the
/// next tier that fits (<c>low_confidence</c>), restarting from its prompt, unless the request allows shedding and that tier
/// is <see cref="TierState.Overloaded"/> (busy, and its predicted time per token past its target): then it stays (<c>shed</c>).</item>
/// <item>A request naming a tier runs there (<c>requested</c>), unless it allows shedding and that tier is overloaded:
/// then the cheapest tier at or above its min_tier that fits and is not overloaded answers (<c>shed</c>).</item>
/// </list>
/// </summary>
public sealed class TierPolicy
{
    /// <summary>A policy with <paramref name="options"/> (validated).</summary>
    public TierPolicy(TierPolicyOptions? options = null)
    {
        Options = options ?? new TierPolicyOptions();
        Options.Validate();
    }

    /// <summary>The thresholds and probe length.</summary>
    public TierPolicyOptions Options { get; }

    /// <summary>Where a request of <paramref name="promptTokens"/> + <paramref name="maxTokens"/> tokens starts.</summary>
    public TierChoice Choose(int promptTokens, int maxTokens, TierRoute route, IReadOnlyList<TierState> tiers)
    {
        ArgumentOutOfRangeException.ThrowIfZero(tiers.Count);
        int min = Math.Clamp(route.MinTier, 0, tiers.Count - 1);
        if (route.Tier is { } named)
        {
            if (route.AllowShed && tiers[named].Overloaded)
                for (int j = min; j < named; j++)
                    if (Fits(tiers[j], promptTokens, maxTokens) && !tiers[j].Overloaded)
                        return new TierChoice(j, TierReason.Shed, Probe: false);
            return new TierChoice(named, TierReason.Requested, Probe: false);
        }
        int start = -1;
        for (int j = min; j < tiers.Count && start < 0; j++)
            if (Fits(tiers[j], promptTokens, maxTokens)) start = j;
        if (start < 0)
        {
            // Nothing holds prompt + max_tokens: the tier with the most room that at least holds the prompt.
            start = min;
            for (int j = min; j < tiers.Count; j++)
                if (tiers[j].ContextLength > tiers[start].ContextLength) start = j;
            return new TierChoice(start, start == 0 ? TierReason.OnlyTier : TierReason.Context, Probe: false);
        }
        bool probe = ShouldProbe(start, promptTokens, maxTokens, tiers);
        TierReason reason = start == 0 ? (probe ? TierReason.Confident : TierReason.OnlyTier)
            : start == min ? TierReason.MinTier
            : TierReason.Context;
        return new TierChoice(start, reason, probe);
    }

    /// <summary>After probing tier <paramref name="current"/> with <paramref name="confidence"/>: stay, or escalate.</summary>
    public TierVerdict Judge(Confidence confidence, int current, int promptTokens, int maxTokens, TierRoute route, IReadOnlyList<TierState> tiers)
    {
        int next = NextFitting(current, promptTokens, maxTokens, tiers);
        if (next < 0) return new TierVerdict(false, current, TierReason.OnlyTier);
        if (IsConfident(confidence)) return new TierVerdict(false, current, TierReason.Confident);
        if (route.AllowShed && tiers[next].Overloaded) return new TierVerdict(false, current, TierReason.Shed);
        return new TierVerdict(true, next, TierReason.LowConfidence);
    }

    /// <summary>
    /// Whether <paramref name="c"/> meets both thresholds. No scored token (the model ended at once) counts as confident:
    /// there is nothing to judge, and restarting would not be cheaper.
    /// </summary>
    public bool IsConfident(Confidence c) =>
        c.Tokens == 0 || (c.MeanLogProb >= Options.MinMeanLogProb && c.MeanEntropy <= Options.MaxMeanEntropy);

    /// <summary>Whether a request on tier <paramref name="current"/> is probed: probing is on and a costlier tier that fits exists.</summary>
    public bool ShouldProbe(int current, int promptTokens, int maxTokens, IReadOnlyList<TierState> tiers) =>
        Options.ProbeTokens > 0 && NextFitting(current, promptTokens, maxTokens, tiers) >= 0;

    private static bool Fits(TierState t, int promptTokens, int maxTokens) => (long)promptTokens + maxTokens <= t.ContextLength;

    /// <summary>The next tier above <paramref name="current"/> whose context holds the request, or −1.</summary>
    private static int NextFitting(int current, int promptTokens, int maxTokens, IReadOnlyList<TierState> tiers)
    {
        for (int j = current + 1; j < tiers.Count; j++)
            if (Fits(tiers[j], promptTokens, maxTokens)) return j;
        return -1;
    }
}
