using System.Globalization;
using System.Text;

namespace Serving.Conformance.Tests.Cases;

/// <summary>Counts the cases of one test and collects the messages of those that failed.</summary>
public sealed class CaseLog
{
    private readonly List<string> _failures = [];

    /// <summary>Cases run.</summary>
    public int Cases { get; private set; }

    /// <summary>Messages of failed cases.</summary>
    public IReadOnlyList<string> Failures => _failures;

    /// <summary>Records one case: <paramref name="failure"/> is null when it passed.</summary>
    public void Record(string? failure)
    {
        Cases++;
        if (failure is not null) _failures.Add(failure);
    }

    /// <summary>Records one case from several checks: it fails with the first failing check.</summary>
    public void Record(params string?[] checks) => Record(checks.FirstOrDefault(c => c is not null));

    /// <summary>Throws an assertion failure listing the failed cases (at most 25) when any failed.</summary>
    public void AssertAllPassed()
    {
        if (Cases == 0) Assert.Fail("no case ran: the test would pass without checking anything");
        if (_failures.Count == 0) return;
        var text = new StringBuilder($"{_failures.Count} of {Cases} cases failed:\n");
        foreach (var f in _failures.Take(25)) text.Append("  ").Append(f).Append('\n');
        if (_failures.Count > 25) text.Append($"  … and {_failures.Count - 25} more\n");
        Assert.Fail(text.ToString());
    }

    /// <summary>
    /// Compares an f32 result with its float64 reference by normalized MSE Σ(y − ref)² / Σ ref². Null when within
    /// <paramref name="limit"/>; otherwise a message naming the case, the first element whose error is above the
    /// per-element share of the limit, and the worst element. A NaN/Inf where the reference has a different value (or
    /// a finite value where it has NaN/Inf) fails regardless of the limit.
    /// </summary>
    /// <param name="context">"backend op type variant shape" of the case.</param>
    /// <param name="cols">Row width, to print indices as [row, col].</param>
    /// <param name="power">
    /// The normalizer when Σ ref² is not a fair one (MatMul, see <see cref="Tolerances"/>); null = Σ ref².
    /// </param>
    public static string? Compare(string context, ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, int cols, double limit,
        double? power = null)
    {
        if (expected.Length != actual.Length)
            return $"{context}: {actual.Length} values, expected {expected.Length}";
        double errorSum = 0, refSum = 0;
        int worst = -1;
        double worstError = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            if (!double.IsFinite(e) || !double.IsFinite(a))
            {
                bool same = double.IsNaN(e) ? double.IsNaN(a) : e.Equals(a);
                if (!same) return $"{context}: non-finite mismatch at {Index(i, cols)}: expected {Format(e)}, actual {Format(a)}";
                continue;
            }
            double d = (a - e) * (a - e);
            errorSum += d;
            refSum += e * e;
            if (d > worstError) { worstError = d; worst = i; }
        }
        refSum = power ?? refSum;
        double nmse = refSum > 0 ? errorSum / refSum : errorSum; // an all-zero reference must be matched exactly
        if (nmse <= limit) return null;

        // The first element whose squared error alone exceeds its even share of the allowed total.
        double share = limit * Math.Max(refSum, double.Epsilon) / expected.Length;
        int first = worst;
        for (int i = 0; i < expected.Length; i++)
            if (double.IsFinite(expected[i]) && (actual[i] - expected[i]) * (actual[i] - expected[i]) > share) { first = i; break; }
        return $"{context}: nMSE {nmse.ToString("E2", CultureInfo.InvariantCulture)} > limit {limit.ToString("E1", CultureInfo.InvariantCulture)}; " +
               $"first bad {Index(first, cols)}: expected {Format(expected[first])}, actual {Format(actual[first])}; " +
               $"worst {Index(worst, cols)}: expected {Format(expected[worst])}, actual {Format(actual[worst])}";
    }

    /// <summary>Exact comparison of two byte arrays; null when equal.</summary>
    public static string? CompareBytes(string context, ReadOnlySpan<byte> expected, ReadOnlySpan<byte> actual)
    {
        if (expected.Length != actual.Length) return $"{context}: {actual.Length} bytes, expected {expected.Length}";
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i])
                return $"{context}: first bad byte {i}: expected 0x{expected[i]:X2}, actual 0x{actual[i]:X2}";
        return null;
    }

    /// <summary>Exact comparison of two int arrays; null when equal.</summary>
    public static string? CompareInts(string context, ReadOnlySpan<int> expected, ReadOnlySpan<int> actual)
    {
        if (expected.Length != actual.Length) return $"{context}: {actual.Length} values, expected {expected.Length}";
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i])
                return $"{context}: first bad index {i}: expected {expected[i]}, actual {actual[i]}";
        return null;
    }

    /// <summary>Prefixes a guard-region failure with the case.</summary>
    public static string? Guards(string context, string? guardFailure) => guardFailure is null ? null : $"{context}: {guardFailure}";

    private static string Index(int i, int cols) => cols > 0 ? $"index {i} [{i / cols}, {i % cols}]" : $"index {i}";

    private static string Format(double v) => v.ToString("G9", CultureInfo.InvariantCulture);
}
