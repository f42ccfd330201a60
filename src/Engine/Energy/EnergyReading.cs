using Serving.Abstractions;

namespace Serving.Engine.Energy;

/// <summary>One meter's share of an <see cref="EnergyReading"/>.</summary>
/// <param name="Source">The meter's <see cref="IEnergyMeter.Source"/>.</param>
/// <param name="Kind">Counter or power samples: how <paramref name="Joules"/> was obtained.</param>
/// <param name="Joules">Energy over the interval, or null when this meter could not measure it (see <paramref name="Note"/>).</param>
/// <param name="Reads">Readings that fell inside the interval.</param>
/// <param name="Note">Why <paramref name="Joules"/> is null, or null.</param>
public sealed record EnergyPart(string Source, EnergyMeterKind Kind, double? Joules, int Reads, string? Note = null);

/// <summary>
/// Energy over one measured interval from one or more meters (a device meter may be the sum of several, e.g. a CPU
/// package counter and a GPU power sensor): the total is their sum, and it is known only when every part is.
/// </summary>
/// <param name="Seconds">Length of the measured interval.</param>
/// <param name="Parts">Each meter's share.</param>
public sealed record EnergyReading(double Seconds, IReadOnlyList<EnergyPart> Parts)
{
    /// <summary>Total joules, or null when there is no meter or any part could not be measured (a partial sum would understate).</summary>
    public double? Joules => Parts.Count > 0 && Parts.All(p => p.Joules is not null) ? Parts.Sum(p => p.Joules!.Value) : null;

    /// <summary>Average watts over the interval, or null.</summary>
    public double? Watts => Joules is { } j && Seconds > 0 ? j / Seconds : null;

    /// <summary>Joules per token for <paramref name="tokens"/> tokens processed in the interval, or null.</summary>
    public double? JoulesPerToken(long tokens) => Joules is { } j && tokens > 0 ? j / tokens : null;

    /// <summary>Tokens per joule, or null.</summary>
    public double? TokensPerJoule(long tokens) => Joules is { } j && j > 0 ? tokens / j : null;

    /// <summary>How the total was obtained: "counter", "power samples", "counter + power samples", or "not measured".</summary>
    public string Method => Label(Parts.Select(p => p.Kind));

    /// <summary>The label for meters of these kinds ("counter", "power samples", "counter + power samples", "not measured").</summary>
    public static string Label(IEnumerable<EnergyMeterKind> kinds)
    {
        var set = kinds.Distinct().Order().ToList();
        return set.Count == 0 ? "not measured" : string.Join(" + ", set.Select(k => k == EnergyMeterKind.Counter ? "counter" : "power samples"));
    }

    /// <summary>Why there is no total ("not measured" without a meter, else each failed part's note), or null.</summary>
    public string? Missing => Parts.Count == 0
        ? "not measured"
        : Joules is null ? string.Join("; ", Parts.Where(p => p.Joules is null).Select(p => $"{p.Source}: {p.Note ?? "no reading"}")) : null;
}
