using Serving.Engine.Scheduling;

namespace Serving.Engine.Routing;

/// <summary>
/// One model tier of a server: a name, the scheduler that runs its model (its own KV cache), its time-per-token
/// target, and the routing counters kept per tier. The tier does not own the scheduler.
/// </summary>
public sealed class Tier
{
    /// <summary>Weight of the newest request in the moving average of time per output token.</summary>
    public const double TpotSmoothing = 0.2;

    private long _started, _answered, _escalations, _shed;
    private double _tpotMs; // guarded by _lock
    private readonly Lock _lock = new();

    /// <summary>A tier named <paramref name="name"/> on <paramref name="scheduler"/>.</summary>
    /// <param name="name">The name requests use (<c>model: "small"</c>).</param>
    /// <param name="scheduler">Its scheduler.</param>
    /// <param name="tpotTargetMs">Its time-per-output-token target, ms (0 = none: never shed from it).</param>
    /// <param name="expectedTpotMs">Time per output token assumed until one is measured (e.g. from a tuning profile), ms; 0 = unknown.</param>
    public Tier(string name, Scheduler scheduler, double tpotTargetMs = 0, double expectedTpotMs = 0)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentOutOfRangeException.ThrowIfNegative(tpotTargetMs);
        ArgumentOutOfRangeException.ThrowIfNegative(expectedTpotMs);
        Name = name;
        Scheduler = scheduler;
        TpotTargetMs = tpotTargetMs;
        _tpotMs = expectedTpotMs;
    }

    /// <summary>The tier's name.</summary>
    public string Name { get; }

    /// <summary>The scheduler running its model.</summary>
    public Scheduler Scheduler { get; }

    /// <summary>Time-per-output-token target, ms; 0 = none.</summary>
    public double TpotTargetMs { get; }

    /// <summary>Moving average of the time per output token of its recent requests, ms (0 until measured).</summary>
    public double TpotMs { get { lock (_lock) return _tpotMs; } }

    /// <summary>Routed requests that ran on this tier (first choice or escalation target), probes included.</summary>
    public long Started => Interlocked.Read(ref _started);

    /// <summary>Routed requests this tier answered (its result went to the client).</summary>
    public long Answered => Interlocked.Read(ref _answered);

    /// <summary>Requests escalated away from this tier after its probe.</summary>
    public long Escalations => Interlocked.Read(ref _escalations);

    /// <summary>Requests this tier answered because a costlier one was overloaded (reason shed or escalation_refused).</summary>
    public long Shed => Interlocked.Read(ref _shed);

    /// <summary>Its state for the policy now.</summary>
    public TierState Snapshot()
    {
        var m = Scheduler.GetMetrics();
        return new TierState(Name, Scheduler.ContextLength, m.Running, m.Waiting, Scheduler.MaxBatchSequences, TpotMs, TpotTargetMs);
    }

    /// <summary>Feeds a finished request's time per output token into the moving average.</summary>
    public void ObserveTpot(TimeSpan tpot)
    {
        double ms = tpot.TotalMilliseconds;
        if (!double.IsFinite(ms) || ms <= 0) return;
        lock (_lock) _tpotMs = _tpotMs <= 0 ? ms : _tpotMs + TpotSmoothing * (ms - _tpotMs);
    }

    internal void CountStarted() => Interlocked.Increment(ref _started);
    internal void CountAnswered() => Interlocked.Increment(ref _answered);
    internal void CountEscalation() => Interlocked.Increment(ref _escalations);
    internal void CountShed() => Interlocked.Increment(ref _shed);
}
