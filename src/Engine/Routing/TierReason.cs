namespace Serving.Engine.Routing;

/// <summary>Why a request was answered by the tier that answered it (the wire names are in <see cref="TierReasons.Wire"/>).</summary>
public enum TierReason
{
    /// <summary>The request named the tier.</summary>
    Requested,
    /// <summary>Auto: the cheaper tier's confidence over the probe met the thresholds; it answered.</summary>
    Confident,
    /// <summary>Auto: a cheaper tier's confidence fell below a threshold; the request was restarted here.</summary>
    LowConfidence,
    /// <summary>Auto: every cheaper tier's context is too short for prompt + max_tokens.</summary>
    Context,
    /// <summary>Auto: the request's min_tier excluded the cheaper tiers.</summary>
    MinTier,
    /// <summary>The tier it would have gone to (by name or by escalation) was overloaded; a cheaper one answered.</summary>
    Shed,
    /// <summary>Auto: the escalation target refused the request (queue full or not ready); the cheaper tier kept it.</summary>
    EscalationRefused,
    /// <summary>Auto: no other tier could take it (one tier only, or the last tier that fits).</summary>
    OnlyTier,
}

/// <summary>The wire names of <see cref="TierReason"/>.</summary>
public static class TierReasons
{
    /// <summary>"requested", "confident", "low_confidence", "context", "min_tier", "shed", "escalation_refused", "only_tier".</summary>
    public static string Wire(this TierReason reason) => reason switch
    {
        TierReason.Requested => "requested",
        TierReason.Confident => "confident",
        TierReason.LowConfidence => "low_confidence",
        TierReason.Context => "context",
        TierReason.MinTier => "min_tier",
        TierReason.Shed => "shed",
        TierReason.EscalationRefused => "escalation_refused",
        _ => "only_tier",
    };
}
