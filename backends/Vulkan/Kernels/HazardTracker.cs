namespace Serving.Backends.Vulkan.Kernels;

/// <summary>
/// Decides where a stream needs a pipeline barrier: it remembers the byte ranges read and written since the last
/// barrier, and an op that reads a range written since then (read after write), or writes a range read or written
/// since then (write after read, write after write), needs one first. Independent ops (the q, k and v projections
/// of a layer, say) then run without barriers between them. State carries across submissions, because work of an
/// earlier submission may still run when the next one starts.
/// </summary>
internal sealed class HazardTracker
{
    private readonly List<BufferRange> _written = [];
    private readonly List<BufferRange> _read = [];

    /// <summary>Barriers this tracker asked for (for tests and statistics).</summary>
    public long Barriers { get; private set; }

    /// <summary>True when an op touching <paramref name="ranges"/> must wait for the ops since the last barrier.</summary>
    public bool NeedsBarrier(ReadOnlySpan<BufferRange> ranges)
    {
        foreach (BufferRange r in ranges)
        {
            foreach (BufferRange w in _written)
                if (r.Overlaps(w)) return true;
            if (r.Writes)
                foreach (BufferRange x in _read)
                    if (r.Overlaps(x)) return true;
        }
        return false;
    }

    /// <summary>Checks <paramref name="ranges"/>; returns true when a barrier must be recorded first (and resets), then remembers them.</summary>
    public bool Access(ReadOnlySpan<BufferRange> ranges)
    {
        bool barrier = NeedsBarrier(ranges);
        if (barrier)
        {
            Reset();
            Barriers++;
        }
        foreach (BufferRange r in ranges)
            (r.Writes ? _written : _read).Add(r);
        return barrier;
    }

    /// <summary>Forgets everything (after a barrier, or once all submitted work finished).</summary>
    public void Reset()
    {
        _written.Clear();
        _read.Clear();
    }
}
