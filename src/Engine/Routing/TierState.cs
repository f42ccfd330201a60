namespace Serving.Engine.Routing;

/// <summary>
/// What the policy knows of one tier when it decides: its limits and its load now.
/// </summary>
/// <param name="Name">The tier's name.</param>
/// <param name="ContextLength">Positions one request may hold on it (prompt + generated).</param>
/// <param name="Running">Sequences in its running batch now.</param>
/// <param name="Waiting">Requests waiting for admission now.</param>
/// <param name="MaxBatchSequences">Sequences its scheduler runs together.</param>
/// <param name="TpotMs">Its measured time per output token, ms (a moving average over recent requests); 0 = not measured yet.</param>
/// <param name="TpotTargetMs">Its time-per-output-token target, ms; 0 = none (never shed from it).</param>
public readonly record struct TierState(string Name, int ContextLength, int Running, int Waiting, int MaxBatchSequences, double TpotMs, double TpotTargetMs)
{
    /// <summary>
    /// The time per output token a new request would see: <see cref="TpotMs"/> × max(1, (running + waiting + 1) /
    /// max batch). With more requests than batch slots, a new one waits for whole generations to end, and that wait
    /// spreads over its tokens.
    /// </summary>
    public double PredictedTpotMs => TpotMs * Math.Max(1.0, (Running + Waiting + 1.0) / Math.Max(1, MaxBatchSequences));

    /// <summary>
    /// Its load would push a new request's time per token past its target: never when either is unknown, and never when
    /// the tier is idle (nothing running or waiting): shedding is about load, and an idle tier's last measurement may be
    /// stale (it is only refreshed by requests that run there).
    /// </summary>
    public bool Overloaded => TpotTargetMs > 0 && TpotMs > 0 && Running + Waiting > 0 && PredictedTpotMs > TpotTargetMs;
}
