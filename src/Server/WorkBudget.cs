namespace Serving.Server;

/// <summary>
/// The server's memory budget for work in flight (<see cref="RpcServerOptions.MaxWorkBytes"/>): bytes of incomplete
/// messages being received, of decoded requests whose calls run, of what handlers reserve for their own work (a
/// tokenizer's working set, the tokens a request holds) and of replies queued for a socket. A request that does not
/// fit is refused at once with <c>overloaded</c>; a connection whose incomplete message does not fit stops being
/// read (TCP pushes back on the client) until room is freed or its slow-sender timeout closes it. Reply bytes are
/// charged even past the budget (the work is done; they go as fast as the client reads), so they hold new work back.
/// Thread-safe.
/// </summary>
internal sealed class WorkBudget(long limitBytes)
{
    private readonly Lock _lock = new();
    private long _used, _peak, _refused, _releasedSinceCollection, _collections;
    private TaskCompletionSource? _released;

    /// <summary>
    /// Bytes of work released (mostly garbage now: decoded requests, working sets) after which a background collection
    /// of every generation is started, so a burst's garbage — large strings and arrays live on the large-object heap,
    /// which only full collections free — is bounded by this much instead of by the collector's own, growing, budgets.
    /// An eighth of the budget.
    /// </summary>
    public long CollectAfterBytes => limitBytes / 8;

    /// <summary>Background collections started by released work.</summary>
    public long Collections => Interlocked.Read(ref _collections);

    /// <summary>The budget in bytes.</summary>
    public long LimitBytes => limitBytes;

    /// <summary>Bytes charged now.</summary>
    public long UsedBytes
    {
        get
        {
            lock (_lock)
            {
                return _used;
            }
        }
    }

    /// <summary>Most bytes charged at once since the last <see cref="TakePeak"/>.</summary>
    public long PeakBytes
    {
        get
        {
            lock (_lock)
            {
                return _peak;
            }
        }
    }

    /// <summary>Requests refused because they did not fit.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Charges <paramref name="bytes"/> when they fit under the budget; false (nothing charged) when not.</summary>
    public bool TryReserve(long bytes)
    {
        lock (_lock)
        {
            if (bytes > limitBytes - _used)
            {
                return false;
            }
            _used += bytes;
            _peak = Math.Max(_peak, _used);
            return true;
        }
    }

    /// <summary>Charges <paramref name="bytes"/> even beyond the budget (memory already taken, e.g. a queued reply).</summary>
    public void Force(long bytes)
    {
        lock (_lock)
        {
            _used += bytes;
            _peak = Math.Max(_peak, _used);
        }
    }

    /// <summary>Returns <paramref name="bytes"/> and wakes whoever waits for room.</summary>
    public void Release(long bytes)
    {
        if (bytes <= 0)
        {
            return;
        }
        TaskCompletionSource? waiters;
        bool collect = false;
        lock (_lock)
        {
            _used -= bytes;
            waiters = _released;
            _released = null;
            _releasedSinceCollection += bytes;
            if (_releasedSinceCollection >= CollectAfterBytes)
            {
                _releasedSinceCollection = 0;
                collect = true;
            }
        }
        waiters?.TrySetResult();
        if (collect)
        {
            Interlocked.Increment(ref _collections);
            // Background (concurrent) when the runtime allows it, started from the thread pool, not the releasing thread.
            ThreadPool.UnsafeQueueUserWorkItem(static _ => GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: false), null);
        }
    }

    /// <summary>Counts one request refused for the budget.</summary>
    public void CountRefusal() => Interlocked.Increment(ref _refused);

    /// <summary>Completes at the next <see cref="Release"/>.</summary>
    public Task WhenReleasedAsync()
    {
        lock (_lock)
        {
            return (_released ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
    }

    /// <summary>Returns the peak since the last call and starts a new one from the bytes charged now.</summary>
    public long TakePeak()
    {
        lock (_lock)
        {
            long peak = _peak;
            _peak = _used;
            return peak;
        }
    }
}

/// <summary>
/// What one call has charged to the <see cref="WorkBudget"/>: the estimate of its decoded request at first, then what
/// its handler reserves. Released, all of it, when the call ends (idempotent).
/// </summary>
internal sealed class WorkCharge(WorkBudget budget)
{
    private long _bytes;

    /// <summary>True once a running call owns the charge (it releases it when it ends).</summary>
    public bool HandedOver { get; set; }

    /// <summary>Bytes charged now.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>Charges <paramref name="bytes"/> more when they fit; false (nothing charged) when not.</summary>
    public bool TryAdd(long bytes)
    {
        if (bytes <= 0)
        {
            return true;
        }
        if (!budget.TryReserve(bytes))
        {
            return false;
        }
        Interlocked.Add(ref _bytes, bytes);
        return true;
    }

    /// <summary>Returns up to <paramref name="bytes"/> of this charge early (a working set no longer needed).</summary>
    public void Release(long bytes)
    {
        long taken;
        long current;
        do
        {
            current = Interlocked.Read(ref _bytes);
            taken = Math.Clamp(bytes, 0, current);
        }
        while (Interlocked.CompareExchange(ref _bytes, current - taken, current) != current);
        budget.Release(taken);
    }

    /// <summary>Returns everything still charged.</summary>
    public void ReleaseAll() => budget.Release(Interlocked.Exchange(ref _bytes, 0));
}
