namespace Serving.Engine.Tuning;

/// <summary>
/// Summary of repeated timings of one thing (an op call, a whole step), in microseconds: the median is what the tuner
/// compares; the 10th and 90th percentiles say how noisy the machine was while it measured.
/// </summary>
/// <param name="MedianUs">Median sample.</param>
/// <param name="P10Us">10th percentile (nearest rank).</param>
/// <param name="P90Us">90th percentile (nearest rank).</param>
/// <param name="MinUs">Fastest sample.</param>
/// <param name="SamplesUs">Every sample, in run order.</param>
public sealed record TimingStats(double MedianUs, double P10Us, double P90Us, double MinUs, IReadOnlyList<double> SamplesUs)
{
    /// <summary>(P90 − P10) / median: 0.05 means the middle 80 % of samples lie within 5 % of the median's size.</summary>
    public double Spread => MedianUs > 0 ? (P90Us - P10Us) / MedianUs : 0;

    /// <summary>Summarizes <paramref name="samplesUs"/> (at least one).</summary>
    public static TimingStats From(IReadOnlyList<double> samplesUs)
    {
        ArgumentNullException.ThrowIfNull(samplesUs);
        if (samplesUs.Count == 0) throw new ArgumentException("no samples", nameof(samplesUs));
        double[] sorted = samplesUs.Order().ToArray();
        int n = sorted.Length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        double Rank(double p) => sorted[Math.Clamp((int)Math.Ceiling(p * n) - 1, 0, n - 1)];
        return new TimingStats(median, Rank(0.10), Rank(0.90), sorted[0], samplesUs.ToArray());
    }
}
