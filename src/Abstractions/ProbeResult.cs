namespace Serving.Abstractions;

/// <summary>What <see cref="IBackendPlugin.Probe"/> found.</summary>
/// <param name="Usable">True when at least one device can be opened.</param>
/// <param name="Reason">Human-readable: why unusable, or a one-line summary when usable.</param>
/// <param name="Score">Preference when choosing a default device; higher wins (CPU = 10, GPU ≥ 100).</param>
/// <param name="Devices">Devices found; empty when unusable.</param>
public sealed record ProbeResult(bool Usable, string Reason, int Score, IReadOnlyList<DeviceDescriptor> Devices)
{
    /// <summary>A result for a backend that cannot run here.</summary>
    public static ProbeResult Unusable(string reason) => new(false, reason, 0, []);
}
