namespace Serving.Engine.Energy;

/// <summary>One reading of a meter: host time in seconds (a monotonic clock) and the value read — cumulative joules
/// for a counter, watts for a power sensor.</summary>
/// <param name="Seconds">When the value was read.</param>
/// <param name="Value">Joules (counter) or watts (power sample).</param>
public readonly record struct MeterSample(double Seconds, double Value);

/// <summary>
/// The arithmetic of energy over a measured interval, from a meter's readings taken around and during it (docs/bench.md,
/// "Energy"). Nothing is estimated beyond interpolating between two real readings: a counter whose readings do not
/// bracket the interval, or did not move across it, gives no answer rather than a guess.
/// </summary>
public static class EnergyMath
{
    /// <summary>
    /// Steps of a raw counter that wraps to 0 after <paramref name="range"/> − 1 (RAPL's energy_uj wraps at
    /// max_energy_range_uj): current − previous, plus the range when the counter went down. Null when it went down and
    /// the range is unknown (≤ 0): one wrap cannot be told from a reset, so nothing is counted.
    /// </summary>
    public static long? WrapDelta(long previous, long current, long range)
    {
        long delta = current - previous;
        if (delta >= 0) return delta;
        return range > 0 ? delta + range : null;
    }

    /// <summary>
    /// Joules over [<paramref name="start"/>, <paramref name="end"/>] from cumulative counter readings (wrap already
    /// removed), sorted by time: the counter is interpolated linearly between the readings on either side of each edge
    /// (window alignment: the readings are rarely taken exactly at the edges). Null when no reading lies at or before
    /// the start or at or after the end, when the counter went down, or when it did not move between the readings that
    /// bracket the interval (an interval shorter than the counter's update period is below its resolution, not 0 J).
    /// </summary>
    public static double? CounterJoules(IReadOnlyList<MeterSample> readings, double start, double end)
    {
        ArgumentNullException.ThrowIfNull(readings);
        if (!(end >= start) || readings.Count < 2) return null;
        int before = -1, after = -1;
        for (int i = 0; i < readings.Count; i++)
        {
            if (i > 0 && readings[i].Seconds < readings[i - 1].Seconds) throw new ArgumentException("readings must be sorted by time", nameof(readings));
            if (readings[i].Seconds <= start) before = i;
            if (after < 0 && readings[i].Seconds >= end) after = i;
        }
        if (before < 0 || after < 0 || after == before) return null;
        for (int i = before + 1; i <= after; i++)
            if (readings[i].Value < readings[i - 1].Value) return null;
        if (readings[after].Value == readings[before].Value) return null;
        double joules = At(readings, end) - At(readings, start);
        return joules;
    }

    /// <summary>
    /// Joules over [<paramref name="start"/>, <paramref name="end"/>] from power samples (watts) sorted by time: the
    /// power is linear between samples (trapezoids) and held at the first or last sample beyond them, clipped to the
    /// interval. Null when no sample lies within <paramref name="maxGap"/> seconds of the interval (a sensor that stopped
    /// answering), or a sample is negative or not finite.
    /// </summary>
    public static double? PowerJoules(IReadOnlyList<MeterSample> samples, double start, double end, double maxGap)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (!(end >= start) || samples.Count == 0) return null;
        bool near = false;
        for (int i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
            if (i > 0 && s.Seconds < samples[i - 1].Seconds) throw new ArgumentException("samples must be sorted by time", nameof(samples));
            if (!double.IsFinite(s.Value) || s.Value < 0) return null;
            if (s.Seconds >= start - maxGap && s.Seconds <= end + maxGap) near = true;
        }
        if (!near) return null;
        if (end == start) return 0;
        // Breakpoints inside the interval plus its two edges; power between them is linear, so each piece is a trapezoid.
        double joules = 0, t = start, w = At(samples, start);
        foreach (var s in samples)
        {
            if (s.Seconds <= start) continue;
            if (s.Seconds >= end) break;
            joules += (s.Seconds - t) * (w + s.Value) / 2;
            (t, w) = (s.Seconds, s.Value);
        }
        joules += (end - t) * (w + At(samples, end)) / 2;
        return joules;
    }

    /// <summary>Samples that lie inside [<paramref name="start"/>, <paramref name="end"/>].</summary>
    public static int CountInside(IReadOnlyList<MeterSample> samples, double start, double end)
    {
        int n = 0;
        foreach (var s in samples)
            if (s.Seconds >= start && s.Seconds <= end) n++;
        return n;
    }

    /// <summary>The value at <paramref name="t"/>, linear between neighbours and held beyond the ends.</summary>
    private static double At(IReadOnlyList<MeterSample> s, double t)
    {
        if (t <= s[0].Seconds) return s[0].Value;
        if (t >= s[^1].Seconds) return s[^1].Value;
        for (int i = 1; i < s.Count; i++)
        {
            if (s[i].Seconds < t) continue;
            var (a, b) = (s[i - 1], s[i]);
            if (b.Seconds == a.Seconds) return b.Value;
            return a.Value + (b.Value - a.Value) * (t - a.Seconds) / (b.Seconds - a.Seconds);
        }
        return s[^1].Value;
    }
}
