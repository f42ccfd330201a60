namespace Serving.Engine.Routing;

/// <summary>What a request asks of routing.</summary>
/// <param name="Tier">The tier it names (an index into the tiers, cheapest first), or null for auto.</param>
/// <param name="MinTier">The cheapest tier it accepts (index); 0 = any.</param>
/// <param name="AllowShed">It may be answered by a cheaper tier than it would get when that one is overloaded.</param>
public readonly record struct TierRoute(int? Tier = null, int MinTier = 0, bool AllowShed = true)
{
    /// <summary>Auto routing, any tier, shedding allowed.</summary>
    public static TierRoute Auto => new(null, 0, true);
}
