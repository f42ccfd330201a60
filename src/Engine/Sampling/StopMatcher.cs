using System.Text;

namespace Serving.Engine.Sampling;

/// <summary>What <see cref="StopMatcher.Push"/> found.</summary>
/// <param name="Emit">Text that is now safe to send to the client (never part of a stop string).</param>
/// <param name="MatchedStop">The stop string that matched, or null. Once set, the generation is over and the matcher ignores further input.</param>
public readonly record struct StopResult(string Emit, string? MatchedStop)
{
    /// <summary>True when a stop string matched.</summary>
    public bool Stopped => MatchedStop is not null;
}

/// <summary>
/// Finds stop strings in text that arrives piece by piece (decoded tokens). A stop string may span pieces, so
/// the matcher holds back the end of the text while it could still be the start of a stop string, and releases
/// it once it cannot. The stop string itself and everything after it are never emitted. Ordinal comparison.
/// Not thread-safe; one per request.
/// </summary>
public sealed class StopMatcher
{
    private readonly string[] _stops;
    private readonly StringBuilder _pending = new(); // held-back text: a possible prefix of some stop string
    private bool _stopped;

    /// <summary>Creates a matcher for <paramref name="stops"/> (may be empty; empty strings are rejected).</summary>
    public StopMatcher(IEnumerable<string> stops)
    {
        ArgumentNullException.ThrowIfNull(stops);
        _stops = [.. stops];
        foreach (string s in _stops)
            if (string.IsNullOrEmpty(s)) throw new ArgumentException("Stop strings must not be null or empty.", nameof(stops));
    }

    /// <summary>True once a stop string has matched.</summary>
    public bool Stopped => _stopped;

    /// <summary>
    /// Appends <paramref name="text"/> and returns what can be emitted now. When several stop strings occur, the
    /// one starting earliest wins (the longest on a tie).
    /// </summary>
    public StopResult Push(ReadOnlySpan<char> text)
    {
        if (_stopped) return new StopResult(string.Empty, null);
        if (_stops.Length == 0) return new StopResult(text.ToString(), null);

        _pending.Append(text);
        string buffer = _pending.ToString();

        // Earlier text was already searched, so any match starts in the held part or the new text: both are in buffer.
        int bestAt = -1;
        string? best = null;
        foreach (string stop in _stops)
        {
            int at = buffer.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (bestAt < 0 || at < bestAt || (at == bestAt && stop.Length > best!.Length))) { bestAt = at; best = stop; }
        }
        if (best is not null)
        {
            _stopped = true;
            _pending.Clear();
            return new StopResult(buffer[..bestAt], best);
        }

        int hold = LongestPartialMatch(buffer);
        _pending.Clear();
        _pending.Append(buffer, buffer.Length - hold, hold);
        return new StopResult(buffer[..^hold], null);
    }

    /// <summary>Releases the held-back text at the end of the generation (it can no longer become a stop string).</summary>
    public string Flush()
    {
        string rest = _pending.ToString();
        _pending.Clear();
        return _stopped ? string.Empty : rest;
    }

    /// <summary>Length of the longest suffix of <paramref name="buffer"/> that is a proper prefix of some stop string.</summary>
    private int LongestPartialMatch(string buffer)
    {
        int best = 0;
        foreach (string stop in _stops)
        {
            for (int len = Math.Min(stop.Length - 1, buffer.Length); len > best; len--)
            {
                if (buffer.AsSpan(buffer.Length - len).SequenceEqual(stop.AsSpan(0, len))) { best = len; break; }
            }
        }
        return best;
    }
}
