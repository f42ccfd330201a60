namespace Serving.Backends.Cpu.Threading;

/// <summary>
/// A persistent pool of worker threads, created once per device, that runs one parallel loop at a time:
/// <c>body(context, item, worker)</c> for item in [0, items), items handed out dynamically (an atomic counter),
/// the calling thread working as worker 0. The context is an unmanaged struct on the caller's stack, valid because
/// <see cref="Run"/> returns only when every item is done; nothing is allocated per call.
/// Workers spin briefly after a loop before sleeping, since a decode step issues hundreds of small loops back to
/// back and waking a sleeping thread costs tens of microseconds.
/// A helper joins a loop only while it is open; the caller closes it once every item is handed out and then waits
/// only for helpers that joined. So a helper the OS has not scheduled (a busy or oversubscribed machine) never
/// holds the caller up: the caller runs the items itself, and the late helper finds the loop closed.
/// </summary>
internal sealed unsafe class WorkerPool : IDisposable
{
    /// <summary>Polls of the wake signal before a worker blocks (about 50–100 µs of spinning).</summary>
    private const int SpinPolls = 2000;

    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _wake;
    private readonly object _gate = new();

    private delegate*<void*, int, int, void> _body;
    private void* _context;
    private int _items;
    private int _next;
    private int _running;
    private int _open;
    private volatile bool _stopping;
    private Exception? _error;

    /// <summary>Starts <paramref name="threads"/> − 1 background threads (the caller is the last worker).</summary>
    public WorkerPool(int threads, string name)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        _threads = new Thread[threads - 1];
        _wake = new SemaphoreSlim[threads];
        for (int i = 0; i < threads; i++)
            _wake[i] = new SemaphoreSlim(0);
        for (int i = 1; i < threads; i++)
        {
            int worker = i;
            _threads[i - 1] = new Thread(() => WorkerLoop(worker)) { IsBackground = true, Name = $"{name} worker {worker}" };
            _threads[i - 1].Start();
        }
    }

    /// <summary>Workers including the calling thread; the range of the <c>worker</c> argument.</summary>
    public int Workers => _threads.Length + 1;

    /// <summary>
    /// Runs body(context, item, worker) for every item in [0, items) and returns when all are done. Calls from
    /// several threads are serialized. An exception in any item is rethrown here after the loop finishes.
    /// </summary>
    public void Run(delegate*<void*, int, int, void> body, void* context, int items)
    {
        if (items <= 0)
            return;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            int helpers = Math.Min(items - 1, _threads.Length);
            if (helpers == 0)
            {
                for (int i = 0; i < items; i++)
                    body(context, i, 0);
                return;
            }
            _body = body;
            _context = context;
            _items = items;
            _error = null;
            Volatile.Write(ref _next, 0);
            Volatile.Write(ref _open, 1);
            for (int w = 1; w <= helpers; w++)
            {
                // A helper still asleep from an earlier wake needs no second one (the count would only pile up).
                if (_wake[w].CurrentCount == 0)
                    _wake[w].Release();
            }
            Execute(0);
            // Close the loop, then wait for the helpers that joined it. Both sides use full fences (a helper counts
            // itself in, then reads _open), so a helper either is seen in _running here or sees the loop closed.
            Interlocked.Exchange(ref _open, 0);
            var spinner = new SpinWait();
            while (Volatile.Read(ref _running) != 0)
                spinner.SpinOnce(sleep1Threshold: -1);
            _body = null;
            _context = null;
            if (_error is { } error)
                throw new AggregateException("a CPU kernel failed", error);
        }
    }

    /// <summary>
    /// As <see cref="Run(delegate*{void*, int, int, void}, void*, int)"/>, but runs on the calling thread alone when
    /// the loop touches fewer than <see cref="InlineElements"/> elements: waking workers costs more than it saves.
    /// </summary>
    public void Run(delegate*<void*, int, int, void> body, void* context, int items, long elements)
    {
        if (elements < InlineElements || items == 1)
        {
            for (int i = 0; i < items; i++)
                body(context, i, 0);
            return;
        }
        Run(body, context, items);
    }

    /// <summary>Loops touching fewer elements than this run on the calling thread.</summary>
    public const long InlineElements = 32 * 1024;

    private void Execute(int worker)
    {
        try
        {
            int items = _items;
            for (int i = Interlocked.Increment(ref _next) - 1; i < items; i = Interlocked.Increment(ref _next) - 1)
                _body(_context, i, worker);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _error, e, null);
            // Skip the remaining items: the result is discarded anyway.
            Volatile.Write(ref _next, int.MaxValue / 2);
        }
    }

    private void WorkerLoop(int worker)
    {
        SemaphoreSlim wake = _wake[worker];
        while (true)
        {
            bool woken = false;
            for (int poll = 0; poll < SpinPolls && !woken; poll++)
            {
                if (wake.CurrentCount > 0)
                    woken = wake.Wait(0);
                else
                    Thread.SpinWait(8);
            }
            if (!woken)
                wake.Wait();
            if (_stopping)
                return;
            Interlocked.Increment(ref _running);
            // Any open loop is fine to join, even a later one than the wake was for: its fields are stable until
            // the caller sees _running back at 0.
            if (Volatile.Read(ref _open) == 1)
                Execute(worker);
            Interlocked.Decrement(ref _running);
        }
    }

    /// <summary>Stops and joins the workers.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_stopping)
                return;
            _stopping = true;
            for (int w = 1; w < _wake.Length; w++)
                _wake[w].Release();
        }
        foreach (Thread t in _threads)
            t.Join();
        foreach (SemaphoreSlim s in _wake)
            s.Dispose();
    }
}
