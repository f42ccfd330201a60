using Serving.Engine.Sampling;

namespace Serving.Engine.Tests.Sampling;

public class StopMatcherTests
{
    [Fact]
    public void Stop_spanning_pieces_cuts_the_text_before_it()
    {
        var m = new StopMatcher(["o w"]);
        Assert.Equal(new StopResult("Hel", null), m.Push("Hel"));
        StopResult r = m.Push("lo wo");
        Assert.Equal("l", r.Emit);
        Assert.Equal("o w", r.MatchedStop);
        Assert.True(m.Stopped);
        Assert.Equal(string.Empty, m.Push("more").Emit);
        Assert.Equal(string.Empty, m.Flush());
    }

    [Fact]
    public void Possible_start_of_a_stop_is_held_until_it_cannot_match()
    {
        var m = new StopMatcher(["</s>"]);
        Assert.Equal("abc", m.Push("abc<").Emit);
        Assert.Equal(string.Empty, m.Push("/").Emit);
        Assert.Equal("</x", m.Push("x").Emit);
        Assert.False(m.Stopped);
    }

    [Fact]
    public void Stop_arriving_one_character_at_a_time_emits_nothing_of_it()
    {
        var m = new StopMatcher(["</s>"]);
        string emitted = "";
        foreach (char c in "ok</s>after") emitted += m.Push(c.ToString()).Emit;
        Assert.Equal("ok", emitted);
        Assert.True(m.Stopped);
    }

    [Fact]
    public void Flush_releases_held_text()
    {
        var m = new StopMatcher(["STOP"]);
        Assert.Equal("ab", m.Push("abST").Emit);
        Assert.Equal("ST", m.Flush());
    }

    [Fact]
    public void Earliest_stop_wins()
    {
        var m = new StopMatcher(["cd", "b"]);
        StopResult r = m.Push("abcd");
        Assert.Equal("a", r.Emit);
        Assert.Equal("b", r.MatchedStop);
    }

    [Fact]
    public void Without_stops_text_passes_through_and_empty_stops_are_rejected()
    {
        var m = new StopMatcher([]);
        Assert.Equal("x</s>", m.Push("x</s>").Emit);
        Assert.Throws<ArgumentException>(() => new StopMatcher(["ok", ""]));
    }
}
