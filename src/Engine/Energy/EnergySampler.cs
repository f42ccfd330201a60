using System.Diagnostics;
using Serving.Abstractions;

namespace Serving.Engine.Energy;

/// <summary>
/// Reads a set of meters in the background while work runs, keeping every reading with its time, so that the energy of
/// any interval measured meanwhile can be computed afterwards (<see cref="Measure"/>): counters are interpolated at the
/// interval's edges, power samples integrated over it (<see cref="EnergyMath"/>). Each meter gets its own thread, so a
/// slow one (an external command) never delays the others; <see cref="Mark"/> reads the fast ones at once, at an edge.
/// </summary>
public sealed class EnergySampler : IDisposable
{
    private readonly Meter[] _meters;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread[] _threads;
    private readonly long _origin = Stopwatch.GetTimestamp();
    private bool _disposed;

    /// <summary>Starts reading <paramref name="meters"/>: each every <paramref name="interval"/>, except those in
    /// <paramref name="slow"/>, read every <paramref name="slowInterval"/> and never by <see cref="Mark"/>.</summary>
    public EnergySampler(IReadOnlyList<IEnergyMeter> meters, TimeSpan interval, IReadOnlySet<IEnergyMeter>? slow = null, TimeSpan? slowInterval = null)
    {
        ArgumentNullException.ThrowIfNull(meters);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        _meters = meters.Distinct().Select(m => new Meter(m, slow?.Contains(m) == true ? slowInterval ?? interval : interval, slow?.Contains(m) == true)).ToArray();
        _threads = _meters.Select(m => new Thread(() => Poll(m)) { IsBackground = true, Name = $"energy {m.Inner.Source}" }).ToArray();
        foreach (var m in _meters) Read(m);
        foreach (var t in _threads) t.Start();
    }

    /// <summary>Seconds since the sampler started, on the clock its readings use.</summary>
    public double Now => Stopwatch.GetElapsedTime(_origin).TotalSeconds;

    /// <summary>The meters read.</summary>
    public IEnumerable<IEnergyMeter> Meters => _meters.Select(m => m.Inner);

    /// <summary>Reads every fast meter now (call at an interval's edges, so counters are bracketed tightly).</summary>
    public void Mark()
    {
        foreach (var m in _meters)
            if (!m.Slow) Read(m);
    }

    /// <summary>
    /// The energy of [<paramref name="start"/>, <paramref name="end"/>] (times from <see cref="Now"/>) as measured by
    /// <paramref name="meters"/> (a subset of the sampled ones; empty gives a reading with no parts: "not measured").
    /// Call after the interval has ended and at least one later reading was taken (<see cref="Mark"/>, or a slow
    /// meter's next poll: <see cref="WaitForReadingAfter"/>).
    /// </summary>
    public EnergyReading Measure(IEnumerable<IEnergyMeter> meters, double start, double end)
    {
        var parts = new List<EnergyPart>();
        foreach (var inner in meters)
        {
            var m = _meters.FirstOrDefault(x => ReferenceEquals(x.Inner, inner))
                    ?? throw new ArgumentException($"meter {inner.Source} is not sampled here", nameof(meters));
            MeterSample[] readings;
            int failures;
            lock (m.Readings)
            {
                readings = [.. m.Readings];
                failures = m.Failures;
            }
            int inside = EnergyMath.CountInside(readings, start, end);
            double? joules;
            string? note = null;
            if (m.Kind == EnergyMeterKind.Counter)
            {
                joules = EnergyMath.CounterJoules(readings, start, end);
                if (joules is null)
                    note = readings.Length == 0 ? $"not readable ({failures} failed reads)"
                        : readings[^1].Seconds < end ? "no reading after the interval"
                        : "counter did not advance across the interval (shorter than its update period)";
            }
            else
            {
                joules = EnergyMath.PowerJoules(readings, start, end, maxGap: 2 * m.Interval.TotalSeconds);
                if (joules is null) note = readings.Length == 0 ? $"not readable ({failures} failed reads)" : "no power sample near the interval";
            }
            parts.Add(new EnergyPart(inner.Source, m.Kind, joules, inside, note));
        }
        return new EnergyReading(end - start, parts);
    }

    /// <summary>Waits (at most <paramref name="timeout"/>) until every meter has a reading at or after <paramref name="time"/>.</summary>
    public void WaitForReadingAfter(double time, TimeSpan timeout)
    {
        Mark();
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        foreach (var m in _meters)
            while (Stopwatch.GetTimestamp() < deadline)
            {
                lock (m.Readings)
                    if (m.Readings.Count > 0 && m.Readings[^1].Seconds >= time) break;
                Thread.Sleep(10);
            }
    }

    private void Poll(Meter m)
    {
        while (!_stop.Token.WaitHandle.WaitOne(m.Interval))
            Read(m);
    }

    private void Read(Meter m)
    {
        // One reading at a time per meter, so readings stay in time order.
        lock (m.Gate)
        {
            double t0 = Now;
            bool ok = m.Kind == EnergyMeterKind.Counter ? m.Inner.TryReadJoules(out double value) : m.Inner.TryReadWatts(out value);
            double t1 = Now;
            lock (m.Readings)
            {
                if (!ok || !double.IsFinite(value))
                {
                    m.Failures++;
                    return;
                }
                // A slow read (a command) is stamped at its middle.
                m.Readings.Add(new MeterSample((t0 + t1) / 2, value));
            }
        }
    }

    /// <summary>Stops the threads.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stop.Cancel();
        foreach (var t in _threads) t.Join();
        _stop.Dispose();
    }

    private sealed class Meter(IEnergyMeter inner, TimeSpan interval, bool slow)
    {
        public IEnergyMeter Inner { get; } = inner;
        public EnergyMeterKind Kind { get; } = inner.Kind;
        public TimeSpan Interval { get; } = interval;
        public bool Slow { get; } = slow;
        public object Gate { get; } = new();
        public List<MeterSample> Readings { get; } = [];
        public int Failures { get; set; }
    }
}
