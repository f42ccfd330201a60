namespace Serving.Engine.Speculative;

/// <summary>
/// Chooses how many draft tokens (k) one sequence proposes next, from its measured acceptance rate. With a per-token
/// acceptance rate α and k proposals, a target step yields (1 − α^(k+1)) / (1 − α) tokens on average, and costs
/// 1 + c·k target steps' time when a draft step costs c of a target step (decode is memory bound; the target's
/// verification of k+1 rows costs about what one row does). k maximizes yield per cost; k = 0 (plain decoding) when
/// drafting does not pay, re-probed with k = 1 every <see cref="ProbeEvery"/> steps so a sequence whose text becomes
/// predictable starts speculating again. α is estimated with a decaying count (recent steps weigh more) and a prior
/// worth two observations at 0.5, so a new sequence starts cautiously.
/// </summary>
public sealed class DraftLength
{
    /// <summary>Steps without drafting after which one step proposes a single token to measure again.</summary>
    public const int ProbeEvery = 8;

    private const double Decay = 0.8, Prior = 0.5, PriorWeight = 2;
    private readonly int _max;
    private readonly double _cost;
    private readonly bool _adaptive;
    private double _successes, _trials;
    private int _idle;

    /// <summary>Creates the chooser for one sequence: at most <paramref name="maxTokens"/>, draft cost ratio <paramref name="costRatio"/>;
    /// not <paramref name="adaptive"/> always gives <paramref name="maxTokens"/>.</summary>
    public DraftLength(int maxTokens, double costRatio, bool adaptive = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        _max = maxTokens;
        _cost = costRatio;
        _adaptive = adaptive;
    }

    /// <summary>The estimated per-token acceptance rate.</summary>
    public double Rate => (_successes + Prior * PriorWeight) / (_trials + PriorWeight);

    /// <summary>Draft tokens to propose in the next step (0 = decode plainly this step).</summary>
    public int Next()
    {
        if (!_adaptive) return _max;
        int best = Best(Rate, _cost, _max);
        if (best > 0)
        {
            _idle = 0;
            return best;
        }
        if (++_idle >= ProbeEvery)
        {
            _idle = 0;
            return 1;
        }
        return 0;
    }

    /// <summary>Records a verification: <paramref name="accepted"/> of <paramref name="proposed"/> draft tokens kept.
    /// Tokens after the first rejected one were never tested, so they do not count as trials.</summary>
    public void Record(int proposed, int accepted)
    {
        if (proposed <= 0) return;
        int trials = accepted + (accepted < proposed ? 1 : 0);
        _successes = _successes * Decay + accepted;
        _trials = _trials * Decay + trials;
    }

    /// <summary>The k in [0, <paramref name="max"/>] with the most expected tokens per unit of step cost.</summary>
    public static int Best(double rate, double costRatio, int max)
    {
        int best = 0;
        double bestValue = 1; // k = 0: one token for one target step
        for (int k = 1; k <= max; k++)
        {
            double tokens = rate >= 1 ? k + 1 : (1 - Math.Pow(rate, k + 1)) / (1 - rate);
            double value = tokens / (1 + costRatio * k);
            if (value > bestValue + 1e-9)
            {
                best = k;
                bestValue = value;
            }
        }
        return best;
    }
}
