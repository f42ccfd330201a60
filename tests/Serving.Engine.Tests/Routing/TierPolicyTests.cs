using Serving.Engine.Routing;

namespace Serving.Engine.Tests.Routing;

/// <summary>The auto policy's decisions from tier states of known load and cost, without models.</summary>
public sealed class TierPolicyTests
{
    private static readonly TierPolicy Policy = new(new TierPolicyOptions { ProbeTokens = 4, MinMeanLogProb = -2.0, MaxMeanEntropy = 3.0 });

    private static TierState Small(int context = 128) => new("small", context, 0, 0, 8, 5, 0);

    private static TierState Large(int running = 0, int waiting = 0, double tpot = 10, double target = 25, int context = 512) =>
        new("large", context, running, waiting, 4, tpot, target);

    [Fact]
    public void Auto_StartsOnTheCheapestTier_AndProbesIt()
    {
        var c = Policy.Choose(10, 20, TierRoute.Auto, [Small(), Large()]);
        Assert.Equal(new TierChoice(0, TierReason.Confident, Probe: true), c);
    }

    [Fact]
    public void Auto_SkipsATierWhoseContextCannotHoldPromptPlusMaxTokens()
    {
        var c = Policy.Choose(100, 60, TierRoute.Auto, [Small(context: 128), Large()]);
        Assert.Equal(new TierChoice(1, TierReason.Context, Probe: false), c);
    }

    [Fact]
    public void Auto_MinTier_StartsThere_AndTheLastTierIsNotProbed()
    {
        var c = Policy.Choose(10, 20, new TierRoute(null, MinTier: 1), [Small(), Large()]);
        Assert.Equal(new TierChoice(1, TierReason.MinTier, Probe: false), c);
    }

    [Fact]
    public void Auto_WithOneTier_IsThatTier_Unprobed()
    {
        Assert.Equal(new TierChoice(0, TierReason.OnlyTier, Probe: false), Policy.Choose(10, 20, TierRoute.Auto, [Small()]));
    }

    [Fact]
    public void Auto_NothingFits_TakesTheLargestContext()
    {
        var c = Policy.Choose(100, 1000, TierRoute.Auto, [Small(context: 128), Large(context: 512)]);
        Assert.Equal(new TierChoice(1, TierReason.Context, Probe: false), c);
    }

    [Fact]
    public void Judge_Confident_Stays()
    {
        var v = Policy.Judge(new Confidence(4, -0.5, 1.0), 0, 10, 20, TierRoute.Auto, [Small(), Large()]);
        Assert.Equal(new TierVerdict(false, 0, TierReason.Confident), v);
    }

    [Theory]
    [InlineData(-2.5, 1.0)] // mean ln p below −2
    [InlineData(-0.5, 3.5)] // mean entropy above 3
    public void Judge_BelowEitherThreshold_Escalates(double logProb, double entropy)
    {
        var v = Policy.Judge(new Confidence(4, logProb, entropy), 0, 10, 20, TierRoute.Auto, [Small(), Large()]);
        Assert.Equal(new TierVerdict(true, 1, TierReason.LowConfidence), v);
    }

    [Fact]
    public void Judge_NothingScored_Stays()
    {
        var v = Policy.Judge(new Confidence(0, 0, 0), 0, 10, 20, TierRoute.Auto, [Small(), Large()]);
        Assert.Equal(new TierVerdict(false, 0, TierReason.Confident), v);
    }

    [Fact]
    public void Judge_Unsure_LargeOverloaded_ShedsToSmall_OnlyWhenAllowed()
    {
        // 10 ms per token now; 4 + 6 + 1 requests on 4 batch slots → 27.5 ms predicted > 25 ms target.
        var busy = Large(running: 4, waiting: 6);
        Assert.True(busy.Overloaded);
        var unsure = new Confidence(4, -5, 5);
        Assert.Equal(new TierVerdict(false, 0, TierReason.Shed), Policy.Judge(unsure, 0, 10, 20, TierRoute.Auto, [Small(), busy]));
        Assert.Equal(new TierVerdict(true, 1, TierReason.LowConfidence),
            Policy.Judge(unsure, 0, 10, 20, new TierRoute(null, 0, AllowShed: false), [Small(), busy]));
    }

    [Theory]
    [InlineData(4, 4, 10, 25, false)]  // 22.5 ms predicted
    [InlineData(4, 6, 10, 25, true)]   // 27.5 ms
    [InlineData(1, 0, 30, 25, true)]   // busy, and already slower than the target
    [InlineData(0, 0, 30, 25, false)]  // idle: its measurement may be stale, and no queue slows it
    [InlineData(40, 40, 0, 25, false)] // nothing measured yet: never shed
    [InlineData(40, 40, 10, 0, false)] // no target: never shed
    public void Overloaded_FollowsThePredictedTpot(int running, int waiting, double tpot, double target, bool overloaded)
    {
        Assert.Equal(overloaded, Large(running, waiting, tpot, target).Overloaded);
    }

    [Fact]
    public void NamedTier_Overloaded_IsShedToTheCheapestThatFits_WhenAllowed()
    {
        var busy = Large(running: 4, waiting: 6);
        Assert.Equal(new TierChoice(0, TierReason.Shed, false), Policy.Choose(10, 20, new TierRoute(1, 0, AllowShed: true), [Small(), busy]));
        Assert.Equal(new TierChoice(1, TierReason.Requested, false), Policy.Choose(10, 20, new TierRoute(1, 0, AllowShed: false), [Small(), busy]));
        // Never below min_tier, never where the request does not fit.
        Assert.Equal(new TierChoice(1, TierReason.Requested, false), Policy.Choose(10, 20, new TierRoute(1, 1, AllowShed: true), [Small(), busy]));
        Assert.Equal(new TierChoice(1, TierReason.Requested, false), Policy.Choose(100, 60, new TierRoute(1, 0, AllowShed: true), [Small(128), busy]));
        Assert.Equal(new TierChoice(1, TierReason.Requested, false), Policy.Choose(10, 20, new TierRoute(1, 0, AllowShed: true), [Small(), Large()]));
    }

    [Fact]
    public void Options_AreValidated()
    {
        Assert.Throws<ArgumentException>(() => new TierPolicy(new TierPolicyOptions { MinMeanLogProb = 0.5 }));
        Assert.Throws<ArgumentException>(() => new TierPolicy(new TierPolicyOptions { MaxMeanEntropy = -1 }));
        Assert.Throws<ArgumentException>(() => new TierPolicy(new TierPolicyOptions { ProbeTokens = -1 }));
    }
}
