namespace Serving.Server;

/// <summary>
/// Per-address back-off of failed authentications. An address's first <see cref="RpcServerOptions.AuthFreeFailures"/>
/// wrong tokens cost nothing; after that each auth attempt from it (on any of its connections) waits its turn before
/// the token is even checked: turns are spaced <see cref="RpcServerOptions.AuthBackoff"/> apart, doubling with each
/// further failure up to <see cref="RpcServerOptions.AuthBackoffMax"/>, so one address checks at most one guess per
/// spacing however many connections it opens. An attempt whose turn would come more than twice the maximum spacing from
/// now is refused unchecked, so nobody waits long. A success, or <see cref="RpcServerOptions.AuthFailureMemory"/> without
/// failures, forgets the address. Thread-safe; time from the options' <see cref="TimeProvider"/>.
/// </summary>
internal sealed class AuthThrottle(RpcServerOptions options)
{
    /// <summary>Most addresses remembered; beyond, new addresses are not tracked until old ones are forgotten.</summary>
    private const int MaxAddresses = 65_536;

    private sealed class State
    {
        public int Failures;
        public long LastFailure;  // TimeProvider timestamp
        public long NextTurn;     // TimeProvider timestamp: the earliest the next attempt may be checked
    }

    /// <summary>What an attempt must do: check now, wait <see cref="Wait"/> then check, or be refused unchecked.</summary>
    public readonly record struct Decision(TimeSpan Wait, bool Refused, TimeSpan RetryAfter);

    private readonly TimeProvider _time = options.TimeProvider;
    private readonly Dictionary<AddressKey, State> _states = [];
    private readonly Lock _lock = new();
    private long _failures, _delayed, _refused;

    public long Failures => Interlocked.Read(ref _failures);
    public long Delayed => Interlocked.Read(ref _delayed);
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Takes a turn for an auth attempt from <paramref name="address"/>.</summary>
    public Decision Begin(AddressKey address)
    {
        long now = _time.GetTimestamp();
        lock (_lock)
        {
            if (!_states.TryGetValue(address, out var s) || s.Failures < options.AuthFreeFailures)
            {
                return default;
            }
            if (_time.GetElapsedTime(s.LastFailure, now) > options.AuthFailureMemory)
            {
                _states.Remove(address);
                return default;
            }
            TimeSpan spacing = Spacing(s.Failures);
            long start = Math.Max(now, s.NextTurn);
            long turn = start + (long)(spacing.TotalSeconds * _time.TimestampFrequency);
            TimeSpan wait = _time.GetElapsedTime(now, turn);
            if (wait > 2 * options.AuthBackoffMax)
            {
                Interlocked.Increment(ref _refused);
                return new Decision(TimeSpan.Zero, true, _time.GetElapsedTime(now, s.NextTurn));
            }
            s.NextTurn = turn;
            Interlocked.Increment(ref _delayed);
            return new Decision(wait, false, TimeSpan.Zero);
        }
    }

    /// <summary>Records a wrong token from <paramref name="address"/>.</summary>
    public void Failed(AddressKey address)
    {
        Interlocked.Increment(ref _failures);
        long now = _time.GetTimestamp();
        lock (_lock)
        {
            if (!_states.TryGetValue(address, out var s))
            {
                if (_states.Count >= MaxAddresses)
                {
                    return;
                }
                _states[address] = s = new State { NextTurn = now };
            }
            s.Failures++;
            s.LastFailure = now;
        }
    }

    /// <summary>A right token: the address starts afresh.</summary>
    public void Succeeded(AddressKey address)
    {
        lock (_lock)
        {
            _states.Remove(address);
        }
    }

    /// <summary>Forgets addresses quiet for longer than <see cref="RpcServerOptions.AuthFailureMemory"/> (heartbeat).</summary>
    public void Prune(long now)
    {
        lock (_lock)
        {
            if (_states.Count == 0)
            {
                return;
            }
            foreach (var (key, s) in _states)
            {
                if (_time.GetElapsedTime(s.LastFailure, now) > options.AuthFailureMemory)
                {
                    _states.Remove(key);
                }
            }
        }
    }

    private TimeSpan Spacing(int failures)
    {
        int doublings = Math.Min(30, failures - options.AuthFreeFailures);
        double seconds = options.AuthBackoff.TotalSeconds * Math.Pow(2, doublings);
        return TimeSpan.FromSeconds(Math.Min(seconds, options.AuthBackoffMax.TotalSeconds));
    }
}
