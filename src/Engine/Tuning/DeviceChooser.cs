using System.Globalization;

namespace Serving.Engine.Tuning;

/// <summary>One device considered by <c>--device auto</c>: its profile, or why it has none.</summary>
/// <param name="DeviceId">backend:index.</param>
/// <param name="Profile">Its tuning profile (cached or just measured), or null.</param>
/// <param name="Problem">Why there is no profile (the device failed to open or to run the model), or null.</param>
public sealed record DeviceCandidate(string DeviceId, TuningProfile? Profile, string? Problem = null);

/// <summary>What <c>--device auto</c> chose.</summary>
/// <param name="DeviceId">The chosen device.</param>
/// <param name="Profile">Its profile.</param>
/// <param name="Reason">"vulkan:0 predicted 41 tok/s, cpu:0 63 tok/s → cpu:0".</param>
public sealed record DeviceChoice(string DeviceId, TuningProfile Profile, string Reason);

/// <summary>
/// <c>--device auto</c> (docs/tuner.md): the device whose profile predicts the best single-sequence decode tokens/s for
/// the model (1 / the measured batch-1 step time with the chosen kernels; a screening profile's, untuned, is marked so).
/// Ties go to the earlier candidate.
/// </summary>
public static class DeviceChooser
{
    /// <summary>Chooses among <paramref name="candidates"/>; null when none has a profile (the reason says why).</summary>
    public static DeviceChoice? Choose(IReadOnlyList<DeviceCandidate> candidates, out string reason)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        var parts = new List<string>();
        DeviceCandidate? best = null;
        foreach (var c in candidates)
        {
            if (c.Profile is { PredictedDecodeTokensPerSecond: > 0 } p)
            {
                string verb = parts.Any(x => x.Contains(" tok/s", StringComparison.Ordinal)) ? "" : "predicted ";
                string untuned = p.Mode == Tuner.ScreenMode ? " (untuned)" : "";
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"{c.DeviceId} {verb}{Rate(p.PredictedDecodeTokensPerSecond)} tok/s{untuned}"));
                if (best is null || p.PredictedDecodeTokensPerSecond > best.Profile!.PredictedDecodeTokensPerSecond) best = c;
            }
            else
            {
                parts.Add($"{c.DeviceId} {c.Problem ?? "no prediction"}");
            }
        }
        if (best is null)
        {
            reason = parts.Count == 0 ? "no device" : string.Join(", ", parts);
            return null;
        }
        reason = $"{string.Join(", ", parts)} → {best.DeviceId}";
        return new DeviceChoice(best.DeviceId, best.Profile!, reason);
    }

    private static string Rate(double r) => r >= 100 ? r.ToString("0", CultureInfo.InvariantCulture)
        : r >= 10 ? r.ToString("0.#", CultureInfo.InvariantCulture) : r.ToString("0.##", CultureInfo.InvariantCulture);
}
