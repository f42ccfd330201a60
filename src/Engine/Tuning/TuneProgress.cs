namespace Serving.Engine.Tuning;

/// <summary>Where a tuning run reports progress: a work count (for a bar) and a line of what it is doing.</summary>
public interface ITuneProgress
{
    /// <summary>Work done of the total planned (the total may grow as phases plan their work).</summary>
    void Report(long done, long total);

    /// <summary>What is being measured now ("MatMul q4_0 [8192, 2048] T=4 matmul_q4_0_rows4").</summary>
    void Status(string status);
}

/// <summary>Counts work and forwards it to an optional <see cref="ITuneProgress"/>.</summary>
internal sealed class ProgressCounter(ITuneProgress? sink)
{
    private long _done, _total;

    public void Plan(long more)
    {
        _total += more;
        sink?.Report(_done, _total);
    }

    public void Step(string status)
    {
        sink?.Status(status);
    }

    public void Done(long count = 1)
    {
        _done = Math.Min(_total, _done + count);
        sink?.Report(_done, _total);
    }
}
