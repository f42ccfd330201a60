namespace Serving.Engine.Tuning;

/// <summary>
/// How long one thing is timed: <see cref="Warmups"/> untimed runs (first-touch of pages, pipeline creation, caches),
/// then timed repeats until at least <see cref="MinRepeats"/> ran and <see cref="Time"/> has passed, or
/// <see cref="MaxRepeats"/> ran, whichever comes first.
/// </summary>
/// <param name="Warmups">Untimed runs first.</param>
/// <param name="MinRepeats">Fewest timed runs.</param>
/// <param name="MaxRepeats">Most timed runs.</param>
/// <param name="Time">Wall time after which no further repeat starts once <paramref name="MinRepeats"/> ran.</param>
public sealed record TimingBudget(int Warmups, int MinRepeats, int MaxRepeats, TimeSpan Time)
{
    /// <summary>One op in fast mode: 1 warm-up, 3–15 repeats within 15 ms.</summary>
    public static TimingBudget FastOp { get; } = new(1, 3, 15, TimeSpan.FromMilliseconds(15));

    /// <summary>One op in full mode: 2 warm-ups, 5–50 repeats within 100 ms.</summary>
    public static TimingBudget FullOp { get; } = new(2, 5, 50, TimeSpan.FromMilliseconds(100));

    /// <summary>One whole step in fast mode: 1 warm-up, 2–10 repeats within 300 ms.</summary>
    public static TimingBudget FastStep { get; } = new(1, 2, 10, TimeSpan.FromMilliseconds(300));

    /// <summary>One whole step in full mode: 2 warm-ups, 5–30 repeats within 1.5 s.</summary>
    public static TimingBudget FullStep { get; } = new(2, 5, 30, TimeSpan.FromMilliseconds(1500));

    /// <summary>Throws <see cref="ArgumentException"/> for counts that cannot work.</summary>
    public void Validate()
    {
        if (Warmups < 0 || MinRepeats < 1 || MaxRepeats < MinRepeats || Time < TimeSpan.Zero)
            throw new ArgumentException($"bad timing budget {this}");
    }
}
