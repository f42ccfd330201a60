using System.Diagnostics;
using Serving.Abstractions;

namespace Serving.Engine.Energy;

/// <summary>
/// The energy a meter has measured since this object was created, kept current by a read every interval (so a counter's
/// wrap is never missed and power samples are integrated as trapezoids between reads) and at each <see cref="Read"/>.
/// Holds only a running total, so it suits a server that runs for weeks (serve's <c>metrics</c>); the bench, which
/// needs the energy of many short intervals, uses <see cref="EnergySampler"/>.
/// </summary>
public sealed class EnergyTotal : IDisposable
{
    private readonly object _gate = new();
    private readonly Func<double> _clock;
    private readonly Timer? _timer;
    private double? _origin;          // counter: first reading
    private double _total;            // joules since creation
    private (double T, double W)? _last; // power samples: the previous one
    private bool _any;

    /// <summary>Starts totalling <paramref name="meter"/>, read every <paramref name="interval"/> (no timer when it is
    /// <see cref="Timeout.InfiniteTimeSpan"/>; <paramref name="clock"/>, seconds, for tests).</summary>
    public EnergyTotal(IEnergyMeter meter, TimeSpan interval, Func<double>? clock = null)
    {
        Meter = meter ?? throw new ArgumentNullException(nameof(meter));
        long origin = Stopwatch.GetTimestamp();
        _clock = clock ?? (() => Stopwatch.GetElapsedTime(origin).TotalSeconds);
        Sample();
        if (interval != Timeout.InfiniteTimeSpan) _timer = new Timer(_ => Sample(), null, interval, interval);
    }

    /// <summary>The meter totalled.</summary>
    public IEnergyMeter Meter { get; }

    /// <summary>"counter" or "power samples".</summary>
    public string Method => EnergyReading.Label([Meter.Kind]);

    /// <summary>Joules since creation, read now; null while the meter has not answered (not readable).</summary>
    public double? Read()
    {
        Sample();
        lock (_gate) return _any ? _total : null;
    }

    private void Sample()
    {
        lock (_gate)
        {
            double t = _clock();
            if (Meter.Kind == EnergyMeterKind.Counter)
            {
                if (!Meter.TryReadJoules(out double j) || !double.IsFinite(j)) return;
                _origin ??= j;
                // The meter handles its own wrap; a counter that went backwards (a reset) keeps the total where it was.
                if (j - _origin.Value >= _total) _total = j - _origin.Value;
                _any = true;
            }
            else
            {
                if (!Meter.TryReadWatts(out double w) || !double.IsFinite(w) || w < 0) return;
                if (_last is { } p && t > p.T) _total += (t - p.T) * (w + p.W) / 2;
                _last = (t, w);
                _any = true;
            }
        }
    }

    /// <summary>Stops the timer.</summary>
    public void Dispose() => _timer?.Dispose();
}
