using System.Collections.Concurrent;
using Serving.Engine.KvCache;
using Serving.Engine.Models;
using Serving.Engine.Sampling;
using Serving.Engine.Speculative;

namespace Serving.Engine.Scheduling;

/// <summary>
/// Runs generation requests on one <see cref="IStepModel"/> with iteration-level continuous batching: a
/// background loop thread builds one forward step at a time from every running sequence, and new requests join
/// between steps.
/// <para>Each step, under <see cref="SchedulerOptions.MaxBatchTokens"/>: (1) one decode token per running sequence,
/// oldest first; (2) prefill chunks of running sequences still reading their prompt, oldest first; (3) new
/// requests from the front of the waiting queue, as far as the token budget, the sequence limit and free KV
/// blocks allow (a request whose first chunk does not fit waits; later ones do not overtake it).</para>
/// <para>KV: a paged cache managed by a <see cref="KvBlockManager"/> with prefix caching, so repeated prompt
/// prefixes are not recomputed. When a running sequence needs a block and none is free, the newest running
/// sequence not yet in the step is preempted by recompute: its blocks are freed and it goes back to the front
/// of the queue, keeping its generated tokens (nothing already streamed is repeated). If no newer sequence
/// exists, a decode preempts itself and a prefill takes a smaller chunk or waits.</para>
/// <para>Failures: a request whose own processing throws (e.g. the decoder) ends with
/// <see cref="FinishReason.Error"/> alone. If the model throws in <see cref="IStepModel.Forward"/>, the KV cache
/// may hold partial writes and the device state is unknown, so no retry is attempted: every request in flight or
/// waiting ends with a <see cref="ModelStepException"/>, and the scheduler becomes
/// <see cref="SchedulerState.Faulted"/> (new submissions throw <see cref="SchedulerUnavailableException"/>).</para>
/// <para>Greedy requests (whose <see cref="Sampler.IsArgmax"/>) mark their logit row <see cref="StepBatch.Greedy"/>: the
/// model returns the row's argmax computed on the device, one int instead of V floats, and the token is the same one
/// the sampler would have picked from the logits.</para>
/// <para>Pipelining: with a model that splits its step at submission (<see cref="IPipelinedStepModel"/>), the loop
/// submits step n, then, while the device runs it, enters the step's full blocks in the prefix cache and plans step
/// n+1's decodes and prefill chunks as they will be if no sequence of step n finishes — positions, slots, block
/// tables and the blocks its reservations will take (read from the block manager, not taken) — into a second batch.
/// Once step n's tokens are accepted, the plan is used only if that held (the running sequences are exactly those it
/// was made from); its reservations are then made, the tokens step n sampled are filled in, and admissions follow as
/// usual. Otherwise it is dropped and the step is planned afresh. Either way each step holds exactly the sequences
/// and tokens the unpipelined loop would give it. A plan that would need a preemption is not made ahead.</para>
/// <para>Speculative decoding (<see cref="SchedulerOptions.Speculative"/>, docs/speculative.md): before a step is built,
/// the draft model proposes k tokens for each decoding sequence (k from its acceptance rate, within the step's token
/// budget), all sequences batched per draft round; the step then carries, for such a sequence, its last token and the
/// k drafts, every one a logit row, beside the other sequences' decodes and prefill chunks. Verification keeps the
/// longest prefix the target agrees with (greedy: its argmax; sampled: rejection sampling) and the target's own next
/// token, so each row yields 1 to k+1 tokens. The KV of rejected drafts is rolled back (whole blocks freed) in both
/// caches, and only verified tokens' blocks enter the prefix cache. Steps are not planned ahead with a draft.</para>
/// Legend: V = vocabulary size, R = logit rows in a step.
/// </summary>
public sealed class Scheduler : IAsyncDisposable
{
    private readonly IStepModel _model;
    private readonly IPipelinedStepModel? _pipelined;
    private readonly ITokenDecoder _decoder;
    private readonly TimeProvider _time;
    private readonly KvBlockManager _kv;
    private readonly int _vocab, _blockSize, _contextLength, _maxBlocksPerSequence, _maxBatchTokens, _maxSequences;
    private readonly int _maxQueuedRequests;
    private readonly int _maxRows;             // logit rows per step: one per sequence, k+1 for one that speculates
    private readonly DraftRunner? _draft;
    private readonly List<Sequence> _proposing = [];
    private readonly float[] _targetProbs = [];  // [V] the target's distribution at a verified row (sampled requests)
    private readonly long _maxQueuedPromptTokens;

    // Reused every step so the loop allocates nothing per step. Two batches: the step running and the next one,
    // planned ahead while it runs (pipelined models only).
    private readonly StepBatch[] _batches;
    private readonly Sequence?[][] _owners;    // per batch, [MaxSequences]: sequence of logit row r
    private int _current;                      // index of the batch being planned or run
    private readonly float[] _logits;         // [MaxSequences, V]: rows of the sampled (non-greedy) logit rows, packed
    private readonly int[] _greedyTokens;     // [MaxSequences]: device argmax of greedy logit row r
    private List<Sequence> _scheduled = [];

    // The next step, planned while the current one runs (see the class remarks).
    private bool _speculated;
    private List<Sequence> _specScheduled = [];
    private readonly HashSet<Sequence> _specMembers = [];
    private readonly List<Sequence> _specRunning = [];                          // _running when it was planned
    private readonly List<(Sequence S, int Tokens, int Computed, int Count)> _specPlan = []; // expected state after the step
    private readonly List<(int Row, Sequence S, int Position)> _specLateTokens = [];       // rows whose token the step samples
    private readonly List<int> _specBlocks = [];                                 // blocks the plan takes, in order
    private int _specBudget;
    private long _specUsed, _specDropped;

    // Loop-thread state.
    private readonly List<Sequence> _running = [];        // admission order, oldest first
    private readonly LinkedList<Sequence> _waiting = new(); // front is admitted next

    // Shared state: _incoming and the queue counters change under _gate together with the state check.
    private readonly ConcurrentQueue<Sequence> _incoming = new();
    private readonly Lock _gate = new();
    private readonly ManualResetEventSlim _wake = new(false);
    private readonly Thread _thread;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _loopExited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SchedulerState _state = SchedulerState.Accepting;
    private Exception? _fault;
    private int _queuedRequests;
    private long _queuedPromptTokens;
    private long _drainDeadline = long.MaxValue; // _time.GetTimestamp() units
    private volatile bool _cancelPending;
    private volatile bool _stop;

    // Metrics: written by the loop thread (Refused by submitters), read by any thread.
    private long _completed, _failed, _cancelled, _preemptions, _refused, _promptTokens, _generatedTokens;
    private long _prefixHitTokens, _computedTokens, _steps, _stepSequences, _stepTicks;
    private int _runningCount, _waitingCount, _kvUsed, _kvCached;
    private long _kvEvictions;
    private long _draftTokens, _draftAccepted;
    private int _draftKvUsed;

    /// <summary>
    /// Creates the scheduler and starts its loop thread. The scheduler does not own <paramref name="model"/> or
    /// <paramref name="decoder"/>; it must be the only user of the model's KV cache.
    /// <paramref name="timeProvider"/> (default <see cref="TimeProvider.System"/>) is the clock of every time it
    /// reports (<see cref="GenerationUsage"/>) and of <see cref="DrainAsync"/>'s grace period, so tests can run it
    /// on a fake clock. The loop only reads timestamps; it never sleeps or waits on a timer.
    /// </summary>
    public Scheduler(IStepModel model, ITokenDecoder decoder, SchedulerOptions? options = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(decoder);
        options ??= new SchedulerOptions();
        options.Validate();
        if (model.VocabSize < 1 || model.ContextLength < 2 || model.KvBlockSize < 1 || model.KvBlockCount < 1
            || model.MaxBatchTokens < 1 || model.MaxBatchSequences < 1)
            throw new ArgumentException(
                $"The model reports unusable limits: vocab {model.VocabSize}, context {model.ContextLength}, KV blocks {model.KvBlockCount}×{model.KvBlockSize}, batch {model.MaxBatchTokens} tokens / {model.MaxBatchSequences} sequences.",
                nameof(model));

        _model = model;
        _pipelined = options.Pipelining && options.Speculative is null ? model as IPipelinedStepModel : null;
        _decoder = decoder;
        _time = timeProvider ?? TimeProvider.System;
        _vocab = model.VocabSize;
        _blockSize = model.KvBlockSize;
        // One sequence can never hold more positions than the whole cache.
        _contextLength = (int)Math.Min(model.ContextLength, (long)model.KvBlockCount * model.KvBlockSize);
        _maxBlocksPerSequence = (_contextLength + _blockSize - 1) / _blockSize;
        _maxBatchTokens = Math.Min(options.MaxBatchTokens, model.MaxBatchTokens);
        _maxSequences = Math.Min(Math.Min(options.MaxBatchSequences, model.MaxBatchSequences), _maxBatchTokens);
        _maxQueuedRequests = options.MaxQueuedRequests;
        _maxQueuedPromptTokens = options.MaxQueuedPromptTokens;
        _kv = new KvBlockManager(model.KvBlockCount, model.KvBlockSize, options.EnablePrefixCaching);
        _batches = [new StepBatch(_maxBatchTokens, _maxSequences, _maxBlocksPerSequence), new StepBatch(_maxBatchTokens, _maxSequences, _maxBlocksPerSequence)];
        if (options.Speculative is { } speculative)
        {
            _draft = new DraftRunner(speculative, model, _maxSequences);
            _targetProbs = new float[_vocab];
        }
        _maxRows = _draft is null ? _maxSequences : Math.Min(_maxBatchTokens, _maxSequences * (1 + _draft.Options.MaxDraftTokens));
        _owners = [new Sequence?[_maxRows], new Sequence?[_maxRows]];
        _logits = new float[(long)_maxRows * _vocab];
        _greedyTokens = new int[_maxRows];
        _kvUsed = 0;

        _thread = new Thread(Loop) { IsBackground = true, Name = "Serving.Scheduler" };
        _thread.Start();
    }

    private StepBatch Batch => _batches[_current];

    private Sequence?[] LogitOwners => _owners[_current];

    /// <summary>Steps whose plan was made while the previous step ran, and plans dropped because a sequence finished
    /// (or was cancelled) in that step: how often pipelining paid off.</summary>
    public (long Used, long Dropped) PlannedAhead => (Interlocked.Read(ref _specUsed), Interlocked.Read(ref _specDropped));

    /// <summary>Positions one sequence may hold: the model's context length, capped by the KV cache size.</summary>
    public int ContextLength => _contextLength;

    /// <summary>Tokens per step actually used (options capped by the model).</summary>
    public int MaxBatchTokens => _maxBatchTokens;

    /// <summary>Sequences per step actually used (options capped by the model and the token budget).</summary>
    public int MaxBatchSequences => _maxSequences;

    /// <summary>Whether new requests are taken, and if not, why.</summary>
    public SchedulerState State { get { lock (_gate) return _state; } }

    /// <summary>What faulted the scheduler (a <see cref="ModelStepException"/> wrapping the model's error, or an internal
    /// error); null unless <see cref="State"/> is <see cref="SchedulerState.Faulted"/>.</summary>
    public Exception? FaultCause { get { lock (_gate) return _fault; } }

    /// <summary>
    /// Queues a request and returns at once. Throws <see cref="ArgumentException"/> for a bad request (empty
    /// prompt, token id outside [0, V), MaxTokens &lt; 1, bad sampling parameters, empty stop string),
    /// <see cref="ContextLengthExceededException"/> when the prompt leaves no room to generate,
    /// <see cref="SchedulerOverloadedException"/> (retriable) when the waiting queue is full, and
    /// <see cref="SchedulerUnavailableException"/> when draining, faulted or disposed.
    /// Cancelling <paramref name="cancellationToken"/> cancels the request like <see cref="GenerationHandle.Cancel"/>.
    /// </summary>
    public GenerationHandle Submit(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Id is null) throw new ArgumentException("The request needs an Id.", nameof(request));
        IReadOnlyList<int>? prompt = request.PromptTokens;
        if (prompt is null || prompt.Count == 0)
            throw new ArgumentException("The prompt must hold at least one token.", nameof(request));
        if (request.MaxTokens < 1)
            throw new ArgumentException($"MaxTokens must be ≥ 1; got {request.MaxTokens}.", nameof(request));
        int promptLength = prompt.Count;
        if (promptLength >= _contextLength) throw new ContextLengthExceededException(promptLength, _contextLength);

        var sampler = new Sampler(request.Sampling ?? SamplingParams.Greedy);
        var stop = new StopMatcher(request.StopStrings ?? []);
        // Sized by what the context can back, never by the caller's MaxTokens alone.
        var tokens = new int[(int)Math.Min((long)promptLength + request.MaxTokens, _contextLength)];
        for (int i = 0; i < promptLength; i++)
        {
            int t = prompt[i];
            if ((uint)t >= (uint)_vocab)
                throw new ArgumentException($"Prompt token {i} is {t}, outside the vocabulary [0, {_vocab}).", nameof(request));
            tokens[i] = t;
        }
        var sequence = new Sequence(this, request, tokens, promptLength, _maxBlocksPerSequence, sampler, stop,
            new IncrementalDetokenizer(_decoder, promptLength), submittedAt: _time.GetTimestamp());

        // Registered before queueing so the loop owns (and disposes) the registration once it sees the request;
        // a token that is already cancelled marks the request, and the loop finishes it as cancelled.
        if (cancellationToken.CanBeCanceled)
            sequence.Registration = cancellationToken.UnsafeRegister(static s => ((Sequence)s!).RequestCancel(), sequence);
        try
        {
            Enqueue(sequence);
        }
        catch
        {
            sequence.Registration.Dispose();
            throw;
        }
        _wake.Set();
        return sequence.Handle;
    }

    private void Enqueue(Sequence sequence)
    {
        lock (_gate)
        {
            if (_state != SchedulerState.Accepting) throw new SchedulerUnavailableException(_state, _fault);
            if (_queuedRequests >= _maxQueuedRequests)
            {
                Interlocked.Increment(ref _refused);
                throw new SchedulerOverloadedException(QueueLimit.Requests, _maxQueuedRequests);
            }
            // A prompt bigger than the whole token bound may still wait alone, or it could never run.
            if (_queuedPromptTokens > 0 && _queuedPromptTokens + sequence.PromptLength > _maxQueuedPromptTokens)
            {
                Interlocked.Increment(ref _refused);
                throw new SchedulerOverloadedException(QueueLimit.PromptTokens, _maxQueuedPromptTokens);
            }
            _queuedRequests++;
            _queuedPromptTokens += sequence.PromptLength;
            _incoming.Enqueue(sequence);
        }
    }

    /// <summary>A consistent-enough snapshot of the counters (each field is read atomically; fields may be a step apart).</summary>
    public SchedulerMetrics GetMetrics()
    {
        long steps = Interlocked.Read(ref _steps);
        long computed = Interlocked.Read(ref _computedTokens);
        return new SchedulerMetrics(
            Running: Volatile.Read(ref _runningCount),
            Waiting: Volatile.Read(ref _waitingCount),
            Completed: Interlocked.Read(ref _completed),
            Failed: Interlocked.Read(ref _failed),
            Cancelled: Interlocked.Read(ref _cancelled),
            Preemptions: Interlocked.Read(ref _preemptions),
            Refused: Interlocked.Read(ref _refused),
            PromptTokens: Interlocked.Read(ref _promptTokens),
            GeneratedTokens: Interlocked.Read(ref _generatedTokens),
            PrefixCacheHitTokens: Interlocked.Read(ref _prefixHitTokens),
            ComputedTokens: computed,
            KvBlocksUsed: Volatile.Read(ref _kvUsed),
            KvBlocksTotal: _kv.BlockCount,
            KvBlocksCached: Volatile.Read(ref _kvCached),
            KvEvictions: Interlocked.Read(ref _kvEvictions),
            Steps: steps,
            MeanBatchSequences: steps == 0 ? 0 : (double)Interlocked.Read(ref _stepSequences) / steps,
            MeanBatchTokens: steps == 0 ? 0 : (double)computed / steps,
            DraftTokens: Interlocked.Read(ref _draftTokens),
            DraftAcceptedTokens: Interlocked.Read(ref _draftAccepted),
            DraftKvBlocksUsed: Volatile.Read(ref _draftKvUsed),
            DraftKvBlocksTotal: _draft?.TotalBlocks ?? 0,
            StepSeconds: (double)Interlocked.Read(ref _stepTicks) / _time.TimestampFrequency);
    }

    /// <summary>
    /// Stops taking requests, lets accepted ones (running and waiting) finish for up to <paramref name="grace"/>,
    /// then cancels what is left. Completes when nothing is in flight. Calling it again can only shorten the grace.
    /// The grace is measured on the scheduler's clock and checked between steps, so a step that has begun finishes
    /// first; a grace of a day or more never expires.
    /// </summary>
    public Task DrainAsync(TimeSpan grace)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(grace, TimeSpan.Zero);
        long deadline = grace >= TimeSpan.FromDays(1)
            ? long.MaxValue
            : _time.GetTimestamp() + (long)(grace.TotalSeconds * _time.TimestampFrequency);
        lock (_gate)
        {
            if (_state == SchedulerState.Accepting) _state = SchedulerState.Draining;
            if (deadline < _drainDeadline) _drainDeadline = deadline;
        }
        _wake.Set();
        return _drained.Task;
    }

    /// <summary>Cancels everything still in flight (a drain with no grace), then stops the loop thread.</summary>
    public async ValueTask DisposeAsync()
    {
        await DrainAsync(TimeSpan.Zero).ConfigureAwait(false);
        _stop = true;
        _wake.Set();
        await _loopExited.Task.ConfigureAwait(false);
        lock (_gate)
        {
            if (_state != SchedulerState.Faulted) _state = SchedulerState.Disposed;
        }
    }

    internal void NotifyCancel()
    {
        _cancelPending = true;
        _wake.Set();
    }

    private void Loop()
    {
        try
        {
            while (true)
            {
                _wake.Reset(); // before looking at the queues, so a wake-up that races with the checks is not lost
                TakeIncoming();
                if (_cancelPending)
                {
                    _cancelPending = false;
                    SweepCancelled();
                }
                if (_time.GetTimestamp() >= Volatile.Read(ref _drainDeadline)) CancelAll();

                if (_running.Count == 0 && _waiting.Count == 0)
                {
                    DropSpeculation();
                    PublishGauges();
                    lock (_gate)
                    {
                        if (_state != SchedulerState.Accepting && _incoming.IsEmpty) _drained.TrySetResult();
                    }
                    if (_stop) return;
                    _wake.Wait();
                    continue;
                }
                RunStep();
            }
        }
        catch (Exception ex)
        {
            Fault(ex is ModelStepException ? ex : new InvalidOperationException($"Internal scheduler error: {ex.Message}", ex));
        }
        finally
        {
            _drained.TrySetResult();
            _loopExited.TrySetResult();
        }
    }

    private void TakeIncoming()
    {
        while (_incoming.TryDequeue(out Sequence? s))
        {
            _waiting.AddLast(s);
            // Its cancel may have fired before it was queued, while an earlier sweep cleared the flag.
            if (s.CancelRequested) _cancelPending = true;
        }
    }

    private void SweepCancelled()
    {
        for (int i = _running.Count - 1; i >= 0; i--)
        {
            Sequence s = _running[i];
            if (!s.CancelRequested) continue;
            _running.RemoveAt(i);
            Finish(s, FinishReason.Cancelled);
        }
        for (LinkedListNode<Sequence>? node = _waiting.First; node is not null;)
        {
            LinkedListNode<Sequence>? next = node.Next;
            if (node.Value.CancelRequested)
            {
                _waiting.Remove(node);
                Finish(node.Value, FinishReason.Cancelled);
            }
            node = next;
        }
    }

    private void CancelAll()
    {
        foreach (Sequence s in _running) Finish(s, FinishReason.Cancelled);
        _running.Clear();
        foreach (Sequence s in _waiting) Finish(s, FinishReason.Cancelled);
        _waiting.Clear();
    }

    private void RunStep()
    {
        if (!TryUsePlannedStep(out int budget))
        {
            Batch.Clear();
            _scheduled.Clear();
            budget = _maxBatchTokens;

            // (0) With a draft model: each decoding sequence's draft tokens, proposed before the step is built.
            if (_draft is not null) ProposeDrafts();
            // (1) Decodes first: they are what users are waiting on, one token each (and a speculating one's drafts).
            for (int i = 0; i < _running.Count && budget > 0; i++)
            {
                Sequence s = _running[i];
                if (s.Pending != 1) continue;
                if (s.Draft is { K: > 0 } d)
                {
                    if (1 + d.K <= budget && _kv.TryReserve(s.Table, s.Computed + 1 + d.K))
                    {
                        AddToStep(s, 1 + d.K, ref budget);
                        continue;
                    }
                    _draft!.Rollback(s, s.Count); // no room for its drafts: decode plainly
                }
                if (Plan(s, 1, isDecode: true) == 0) { i--; continue; } // preempted itself: the list shifted left
                AddToStep(s, 1, ref budget);
            }
            // Proposals that did not make it into the step (budget) are dropped.
            foreach (Sequence s in _proposing)
                if (!s.InStep && s.Draft is { K: > 0 }) _draft!.Rollback(s, s.Count);
            // (2) Prefill chunks of running sequences (prompts longer than a budget, recomputes after preemption).
            for (int i = 0; i < _running.Count && budget > 0; i++)
            {
                Sequence s = _running[i];
                if (s.InStep || s.Pending <= 1) continue;
                int granted = Plan(s, Math.Min(s.Pending, budget), isDecode: false);
                if (granted > 0) AddToStep(s, granted, ref budget);
            }
        }
        // (3) Admissions, in queue order.
        while (_waiting.First is { } node && _running.Count < _maxSequences && budget > 0)
        {
            Sequence s = node.Value;
            // Match at most all-but-one token: the last one must run to produce logits.
            int matched = _kv.MatchPrefix(s.Table, s.Tokens.AsSpan(0, s.Count - 1));
            s.Computed = matched;
            int chunk = Math.Min(s.Pending, budget);
            if (!_kv.TryReserve(s.Table, s.Computed + chunk))
            {
                _kv.Release(s.Table);
                s.Computed = 0;
                break;
            }
            _waiting.RemoveFirst();
            Admit(s, matched);
            AddToStep(s, chunk, ref budget);
        }

        if (_scheduled.Count == 0)
            throw new InvalidOperationException($"No sequence could be scheduled ({_running.Count} running, {_waiting.Count} waiting, {_kv.FreeBlockCount} free KV blocks).");

        // Admitted sequences and their KV blocks are visible in metrics before the step can stream its first token.
        PublishGauges();
        int rows = Batch.LogitCount;
        Span<float> logits = _logits.AsSpan(0, (rows - Batch.GreedyCount) * _vocab);
        long stepStart = _time.GetTimestamp();
        if (_pipelined is { } pipelined)
        {
            StepBegin(pipelined);
            // While the device runs the step: its full blocks go into the prefix cache (their tokens are known; any
            // later step that matches them runs after this one), and the next step is planned.
            CommitStepBlocks();
            PlanNextStep();
            StepEnd(pipelined, logits);
        }
        else
        {
            // Greedy rows come back as one token id each (the device's Argmax), the others as V logits.
            StepForward(logits);
            CommitStepBlocks();
        }
        Interlocked.Add(ref _stepTicks, _time.GetTimestamp() - stepStart);
        Interlocked.Increment(ref _steps);
        Interlocked.Add(ref _stepSequences, Batch.SequenceCount);
        Interlocked.Add(ref _computedTokens, Batch.TokenCount);

        foreach (Sequence s in _scheduled)
        {
            s.InStep = false;
            s.Computed += s.StepTokens;
        }
        for (int r = 0, sampled = 0; r < rows; r++)
        {
            Sequence s = LogitOwners[r]!;
            if (s.Draft is { K: > 0 } draft)
            {
                int k = draft.K;
                Verify(s, r, ref sampled);
                r += k;
                continue;
            }
            LogitOwners[r] = null;
            if (Batch.NonFinite[r])
            {
                if (!Batch.Greedy[r]) sampled++;
                Finish(s, FinishReason.Error, error: new NonFiniteLogitsException(s.Count - 1, s.PromptLength));
            }
            else if (Batch.Greedy[r]) Accept(s, _greedyTokens[r], default);
            else Accept(s, -1, _logits.AsSpan(sampled++ * _vocab, _vocab));
        }
        _running.RemoveAll(static s => s.Finished);
        PublishGauges();
    }

    private void StepForward(Span<float> logits)
    {
        try
        {
            _model.Forward(Batch, logits, _greedyTokens);
        }
        catch (Exception ex)
        {
            throw new ModelStepException(Interlocked.Read(ref _steps), Batch.SequenceCount, Batch.TokenCount, ex);
        }
    }

    private void StepEnd(IPipelinedStepModel model, Span<float> logits)
    {
        try
        {
            model.EndForward(logits, _greedyTokens);
        }
        catch (Exception ex)
        {
            throw new ModelStepException(Interlocked.Read(ref _steps), Batch.SequenceCount, Batch.TokenCount, ex);
        }
    }

    private void StepBegin(IPipelinedStepModel model)
    {
        try
        {
            model.BeginForward(Batch);
        }
        catch (Exception ex)
        {
            throw new ModelStepException(Interlocked.Read(ref _steps), Batch.SequenceCount, Batch.TokenCount, ex);
        }
    }

    /// <summary>Enters the full blocks the step computes into the prefix cache (a speculating sequence's after verification).</summary>
    private void CommitStepBlocks()
    {
        foreach (Sequence s in _scheduled)
            if (s.Draft is not { K: > 0 })
                _kv.CommitFullBlocks(s.Table, s.Tokens.AsSpan(0, s.Computed + s.StepTokens));
    }

    // ---- Planning the next step while the current one runs ----

    /// <summary>Where <paramref name="s"/> will stand once the running step's tokens are accepted, if it does not finish.</summary>
    private static (int Computed, int Count) After(Sequence s)
    {
        if (!s.InStep) return (s.Computed, s.Count);
        int computed = s.Computed + s.StepTokens;
        return (computed, computed == s.Count ? s.Count + 1 : s.Count); // its last token yields one more
    }

    /// <summary>
    /// Plans phases (1) and (2) of the next step into the other batch, as <see cref="RunStep"/> will if no sequence of
    /// the running step finishes, without changing any state: the blocks it would reserve are read from the block
    /// manager (<see cref="KvBlockManager.PeekFreeBlock"/>). Gives up (plans nothing) where the real planning would
    /// preempt.
    /// </summary>
    private void PlanNextStep()
    {
        DropSpeculation();
        int next = 1 - _current;
        StepBatch batch = _batches[next];
        Sequence?[] owners = _owners[next];
        batch.Clear();
        int budget = _maxBatchTokens, taken = 0;
        // (1) Decodes.
        for (int i = 0; i < _running.Count && budget > 0; i++)
        {
            Sequence s = _running[i];
            var (computed, count) = After(s);
            if (count - computed != 1) continue;
            if (!PlanAhead(s, computed, count, 1, batch, owners, ref taken)) { ClearPlan(owners, batch); return; }
            budget--;
        }
        // (2) Prefill chunks, shrunk as Plan shrinks them when blocks are short and no newer sequence can give way.
        for (int i = 0; i < _running.Count && budget > 0; i++)
        {
            Sequence s = _running[i];
            if (_specMembers.Contains(s)) continue;
            var (computed, count) = After(s);
            if (count - computed <= 1) continue;
            int want = Math.Min(count - computed, budget);
            while (want > 0)
            {
                int need = _kv.BlocksNeeded(s.Table, computed + want);
                int free = _kv.FreeBlockCount - taken;
                if (need <= free) break;
                if (HasVictimAhead(s)) { ClearPlan(owners, batch); return; } // the real plan preempts: not ahead
                int fit = (s.Table.Count + free) * _blockSize - computed;
                want = fit >= 1 && fit < want ? fit : 0;
            }
            if (want == 0) continue;
            if (!PlanAhead(s, computed, count, want, batch, owners, ref taken)) { ClearPlan(owners, batch); return; }
            budget -= want;
        }
        _specRunning.AddRange(_running);
        _specBudget = budget;
        _speculated = true;
    }

    /// <summary>The real FindVictim's answer for the planned step: a newer running sequence not in it exists.</summary>
    private bool HasVictimAhead(Sequence s)
    {
        for (int j = _running.Count - 1; j >= 0; j--)
        {
            Sequence r = _running[j];
            if (ReferenceEquals(r, s)) return false;
            if (!_specMembers.Contains(r)) return true;
        }
        return false;
    }

    /// <summary>Adds <paramref name="tokens"/> tokens of <paramref name="s"/> to the planned step, with the blocks the
    /// reservation would take; false when not enough would be left.</summary>
    private bool PlanAhead(Sequence s, int computed, int count, int tokens, StepBatch batch, Sequence?[] owners, ref int taken)
    {
        int need = _kv.BlocksNeeded(s.Table, computed + tokens);
        if (s.Table.Count + need > s.Table.MaxBlocks) return false;
        int first = _specBlocks.Count;
        for (int j = 0; j < need; j++)
        {
            int block = _kv.PeekFreeBlock(taken + j);
            if (block < 0) return false;
            _specBlocks.Add(block);
        }
        taken += need;
        int row = batch.SequenceCount++;
        Span<int> table = batch.BlockTables.AsSpan(row * batch.MaxBlocksPerSequence, batch.MaxBlocksPerSequence);
        s.Table.Blocks.CopyTo(table);
        for (int j = 0; j < need; j++) table[s.Table.Count + j] = _specBlocks[first + j];
        for (int i = 0; i < tokens; i++)
        {
            int pos = computed + i;
            int slot = table[pos / _blockSize] * _blockSize + pos % _blockSize;
            bool wantLogits = pos == count - 1;
            if (wantLogits) owners[batch.LogitCount] = s;
            bool known = pos < s.Count; // else the token the running step samples: filled in once it is accepted
            int t = batch.AddToken(known ? s.Tokens[pos] : 0, pos, row, slot, wantLogits, greedy: wantLogits && s.GreedyRow);
            if (!known) _specLateTokens.Add((t, s, pos));
        }
        _specPlan.Add((s, tokens, computed, count));
        _specMembers.Add(s);
        _specScheduled.Add(s);
        return true;
    }

    private void ClearPlan(Sequence?[] owners, StepBatch batch)
    {
        Array.Clear(owners, 0, batch.LogitCount);
        batch.Clear();
        DropSpeculation();
    }

    private void DropSpeculation()
    {
        if (_speculated)
        {
            Array.Clear(_owners[1 - _current], 0, _batches[1 - _current].LogitCount);
            _batches[1 - _current].Clear();
        }
        _speculated = false;
        _specScheduled.Clear();
        _specMembers.Clear();
        _specRunning.Clear();
        _specPlan.Clear();
        _specLateTokens.Clear();
        _specBlocks.Clear();
    }

    /// <summary>
    /// Makes the step planned ahead the current one when the running step went as it assumed (the same running
    /// sequences, each where it expected): reserves its blocks (exactly those it read ahead), fills in the tokens the
    /// last step sampled, and returns the budget left for admissions. False (and the plan dropped) otherwise.
    /// </summary>
    private bool TryUsePlannedStep(out int budget)
    {
        budget = 0;
        if (!_speculated) return false;
        bool same = _running.Count == _specRunning.Count;
        for (int i = 0; same && i < _running.Count; i++) same = ReferenceEquals(_running[i], _specRunning[i]);
        foreach (var (s, _, computed, count) in _specPlan)
            same &= s.Computed == computed && s.Count == count && !s.Finished;
        if (!same)
        {
            Interlocked.Increment(ref _specDropped);
            DropSpeculation();
            return false;
        }
        int k = 0;
        foreach (var (s, tokens, computed, _) in _specPlan)
        {
            int before = s.Table.Count;
            if (!_kv.TryReserve(s.Table, computed + tokens))
                throw new InvalidOperationException($"The step planned ahead could not reserve the blocks it read ahead for request {s.Request.Id}.");
            for (int j = before; j < s.Table.Count; j++)
                if (s.Table[j] != _specBlocks[k++])
                    throw new InvalidOperationException($"The step planned ahead read block {_specBlocks[k - 1]} for request {s.Request.Id}; the reservation took {s.Table[j]}.");
            s.InStep = true;
            s.StepTokens = tokens;
        }
        _current = 1 - _current;
        foreach (var (row, s, pos) in _specLateTokens) Batch.Tokens[row] = s.Tokens[pos];
        (_scheduled, _specScheduled) = (_specScheduled, _scheduled);
        budget = _specBudget;
        _speculated = false;
        _specScheduled.Clear();
        _specMembers.Clear();
        _specRunning.Clear();
        _specPlan.Clear();
        _specLateTokens.Clear();
        _specBlocks.Clear();
        Interlocked.Increment(ref _specUsed);
        return true;
    }

    /// <summary>
    /// Reserves KV blocks for <paramref name="want"/> more tokens of <paramref name="s"/>, preempting newer
    /// sequences not in this step if needed. Returns the tokens granted, or 0 (preempted itself, or must wait).
    /// </summary>
    private int Plan(Sequence s, int want, bool isDecode)
    {
        while (true)
        {
            if (_kv.TryReserve(s.Table, s.Computed + want)) return want;
            if (FindVictim(s) is { } victim)
            {
                Preempt(victim);
                continue;
            }
            if (!isDecode)
            {
                int fit = (s.Table.Count + _kv.FreeBlockCount) * _blockSize - s.Computed;
                if (fit >= 1 && fit < want)
                {
                    want = fit;
                    continue;
                }
                return 0; // blocks are held by sequences in this step; they will finish or move on
            }
            Preempt(s);
            return 0;
        }
    }

    /// <summary>The newest running sequence admitted after <paramref name="s"/> and not in the step being built.</summary>
    private Sequence? FindVictim(Sequence s)
    {
        for (int j = _running.Count - 1; j >= 0; j--)
        {
            Sequence r = _running[j];
            if (ReferenceEquals(r, s)) return null;
            if (!r.InStep) return r;
        }
        return null;
    }

    private void Preempt(Sequence s)
    {
        // Recompute strategy: its KV is dropped (cached full blocks may still be matched when it returns),
        // its tokens, sampler state and streamed text are kept.
        _kv.Release(s.Table);
        _draft?.Release(s);
        s.Computed = 0;
        s.Preemptions++;
        _running.Remove(s);
        _waiting.AddFirst(s);
        Interlocked.Increment(ref _preemptions);
    }

    private void Admit(Sequence s, int matched)
    {
        if (!s.Admitted)
        {
            s.Admitted = true;
            s.AdmittedAt = _time.GetTimestamp();
            s.CachedPromptTokens = matched;
            Interlocked.Add(ref _promptTokens, s.PromptLength);
        }
        if (s.CountsInQueue) LeaveQueue(s);
        Interlocked.Add(ref _prefixHitTokens, matched);
        _running.Add(s);
    }

    private void LeaveQueue(Sequence s)
    {
        s.CountsInQueue = false;
        lock (_gate)
        {
            _queuedRequests--;
            _queuedPromptTokens -= s.PromptLength;
        }
    }

    private void AddToStep(Sequence s, int tokens, ref int budget)
    {
        int row = Batch.SequenceCount++;
        ReadOnlySpan<int> blocks = s.Table.Blocks;
        blocks.CopyTo(Batch.BlockTables.AsSpan(row * Batch.MaxBlocksPerSequence, Batch.MaxBlocksPerSequence));
        for (int i = 0; i < tokens; i++)
        {
            int pos = s.Computed + i;
            int slot = blocks[pos / _blockSize] * _blockSize + pos % _blockSize;
            // Only the sequence's last token yields a new one; each draft token after it (speculation) yields one too.
            bool wantLogits = pos >= s.Count - 1;
            if (wantLogits) LogitOwners[Batch.LogitCount] = s;
            Batch.AddToken(s.Tokens[pos], pos, row, slot, wantLogits, greedy: wantLogits && s.GreedyRow);
        }
        s.InStep = true;
        s.StepTokens = tokens;
        budget -= tokens;
        _scheduled.Add(s);
    }

    /// <summary>
    /// Takes the next token of <paramref name="s"/>: <paramref name="greedyToken"/> when the step computed it on the
    /// device (its sampler <see cref="Sampler.IsArgmax"/>), else sampled from its <paramref name="logits"/> ([V]); then
    /// streams it. Failures end only this request.
    /// </summary>
    private void Accept(Sequence s, int greedyToken, ReadOnlySpan<float> logits)
    {
        try
        {
            int token = logits.IsEmpty ? CheckedToken(greedyToken) : s.Sampler.Sample(logits, s.Tokens.AsSpan(0, s.Count));
            var (logProb, entropy) = s.Request.ScoreTokens && !logits.IsEmpty ? TokenScore.Of(logits, token) : (float.NaN, float.NaN);
            Append(s, token, logProb, entropy);
        }
        catch (Exception ex)
        {
            Finish(s, FinishReason.Error, error: ex);
        }
    }

    /// <summary>Appends <paramref name="token"/> to <paramref name="s"/> and streams it (with its score when the request
    /// asked for one: ln p and entropy, NaN when not scored), or ends it (end of generation, a stop string, its length).
    /// Throws only what the decoder or stop matcher throws.</summary>
    private void Append(Sequence s, int token, float logProb = float.NaN, float entropy = float.NaN)
    {
        {
            if (_decoder.IsEndOfGeneration(token))
            {
                FinishWithFlush(s, FinishReason.EndOfGeneration);
                return;
            }
            long now = _time.GetTimestamp();
            if (s.Generated == 0) s.FirstTokenAt = now;
            s.LastTokenAt = now;
            s.Tokens[s.Count++] = token;
            Interlocked.Increment(ref _generatedTokens);

            string piece = s.Detokenizer.Next(s.Tokens.AsSpan(0, s.Count));
            StopResult stop = s.Stop.Push(piece);
            s.Emit(token, stop.Emit, logProb, entropy);
            if (stop.Stopped) Finish(s, FinishReason.Stop, matchedStop: stop.MatchedStop);
            else if (s.Generated >= s.Request.MaxTokens || s.Count >= _contextLength) FinishWithFlush(s, FinishReason.Length);
        }
    }

    private int CheckedToken(int token) => (uint)token < (uint)_vocab
        ? token
        : throw new InvalidOperationException($"The model returned token {token} for a greedy row, outside the vocabulary [0, {_vocab}).");

    /// <summary>Ends <paramref name="s"/> after releasing held-back text (which may still complete a stop string).</summary>
    private void FinishWithFlush(Sequence s, FinishReason reason)
    {
        StopResult tail = s.Stop.Push(s.Detokenizer.Flush(s.Tokens.AsSpan(0, s.Count)));
        string text = tail.Stopped ? tail.Emit : tail.Emit + s.Stop.Flush();
        if (text.Length > 0) s.Emit(GenerationChunk.NoToken, text);
        Finish(s, tail.Stopped ? FinishReason.Stop : reason, matchedStop: tail.MatchedStop);
    }

    /// <summary>Frees the request's blocks and publishes its result. The caller removes it from its list.</summary>
    private void Finish(Sequence s, FinishReason reason, string? matchedStop = null, Exception? error = null)
    {
        if (s.Finished) return;
        s.Finished = true;
        _kv.Release(s.Table);
        _draft?.Release(s);
        if (s.CountsInQueue) LeaveQueue(s);
        s.Registration.Dispose();

        long now = _time.GetTimestamp();
        int generated = s.Generated;
        var usage = new GenerationUsage(
            PromptTokens: s.PromptLength,
            CompletionTokens: generated,
            CachedPromptTokens: s.CachedPromptTokens,
            TimeToFirstToken: generated > 0 ? _time.GetElapsedTime(s.SubmittedAt, s.FirstTokenAt) : null,
            TimePerOutputToken: generated > 1 ? _time.GetElapsedTime(s.FirstTokenAt, s.LastTokenAt) / (generated - 1) : null,
            TotalTime: _time.GetElapsedTime(s.SubmittedAt, now),
            QueueTime: s.Admitted ? _time.GetElapsedTime(s.SubmittedAt, s.AdmittedAt) : null,
            Preemptions: s.Preemptions,
            DraftTokens: s.Draft?.Proposed ?? 0,
            DraftAcceptedTokens: s.Draft?.Accepted ?? 0);
        var result = new GenerationResult(s.Request.Id, reason, s.Tokens.AsSpan(s.PromptLength, generated).ToArray(),
            s.Text.ToString(), matchedStop, s.Sampler.Seed, usage, error);
        // Gauges now, so a caller awaiting this result sees the freed blocks.
        Volatile.Write(ref _kvUsed, _kv.UsedBlockCount);
        Volatile.Write(ref _kvCached, _kv.CachedBlockCount);
        Volatile.Write(ref _draftKvUsed, _draft?.UsedBlocks ?? 0);
        switch (reason)
        {
            case FinishReason.Cancelled: Interlocked.Increment(ref _cancelled); break;
            case FinishReason.Error: Interlocked.Increment(ref _failed); break;
            default: Interlocked.Increment(ref _completed); break;
        }
        s.Complete(result);
    }

    private void Fault(Exception error)
    {
        lock (_gate)
        {
            _state = SchedulerState.Faulted;
            _fault = error;
        }
        // No submission can enqueue after the state change, so this sees every request there will be.
        TakeIncoming();
        foreach (Sequence s in _running) FinishQuietly(s, error);
        _running.Clear();
        foreach (Sequence s in _waiting) FinishQuietly(s, error);
        _waiting.Clear();
        PublishGauges();
    }

    private void FinishQuietly(Sequence s, Exception error)
    {
        try
        {
            Finish(s, FinishReason.Error, error: error);
        }
        catch (Exception)
        {
            // The block manager may be inconsistent after an internal error; the result must still be delivered.
            s.Finished = true;
            s.Complete(new GenerationResult(s.Request.Id, FinishReason.Error, [], s.Text.ToString(), null, s.Sampler.Seed,
                new GenerationUsage(s.PromptLength, s.Generated, s.CachedPromptTokens, null, null, TimeSpan.Zero, null, s.Preemptions), error));
        }
    }

    private void PublishGauges()
    {
        Volatile.Write(ref _runningCount, _running.Count);
        Volatile.Write(ref _waitingCount, _waiting.Count);
        Volatile.Write(ref _kvUsed, _kv.UsedBlockCount);
        Volatile.Write(ref _kvCached, _kv.CachedBlockCount);
        Interlocked.Exchange(ref _kvEvictions, _kv.Counters.Evictions);
        Volatile.Write(ref _draftKvUsed, _draft?.UsedBlocks ?? 0);
    }

    // ---- Speculative decoding ----

    /// <summary>
    /// Chooses each decoding sequence's k (its acceptance rate, capped by what is left of its MaxTokens and context and
    /// by the step's token budget after one token per decode) and has the draft propose them.
    /// </summary>
    private void ProposeDrafts()
    {
        _proposing.Clear();
        int decodes = 0;
        foreach (Sequence s in _running)
            if (s.Pending == 1) decodes++;
        int spare = _maxBatchTokens - decodes;
        foreach (Sequence s in _running)
        {
            if (s.Pending != 1) continue;
            DraftState d = _draft!.For(s);
            d.K = 0;
            if (spare <= 0) continue;
            // A request that asked for each token's score (a tier probe) decodes one token a step: accepted draft tokens
            // are verified, not scored.
            if (s.Request.ScoreTokens) continue;
            // The last token must stay the target's own (its bonus or correction), so drafts stop one short of the end.
            int room = Math.Min(s.Tokens.Length - s.Count - 1, s.Request.MaxTokens - s.Generated - 1);
            int k = Math.Min(Math.Min(d.Length.Next(), room), spare);
            if (k <= 0) continue;
            d.K = k;
            spare -= k;
            _proposing.Add(s);
        }
        if (_proposing.Count == 0) return;
        _draft!.Propose(_proposing);
    }

    /// <summary>
    /// Verifies the k draft tokens of <paramref name="s"/> at logit rows <paramref name="first"/>..first+k: keeps the
    /// longest prefix the target accepts and adds the target's token after it; rolls back the KV of the rest in both
    /// models, enters the verified full blocks in the prefix cache, and streams the tokens (which may end the request).
    /// </summary>
    private void Verify(Sequence s, int first, ref int sampled)
    {
        DraftState d = s.Draft!;
        int k = d.K, n = s.Count;
        bool greedy = Batch.Greedy[first];
        int sampledFirst = sampled;
        if (!greedy) sampled += k + 1;
        for (int j = 0; j <= k; j++) LogitOwners[first + j] = null;

        int accepted = 0, next = -1;
        Exception? error = null;
        try
        {
            for (int j = 0; j <= k; j++)
            {
                int r = first + j;
                if (Batch.NonFinite[r])
                {
                    error = new NonFiniteLogitsException(n - 1 + j, s.PromptLength);
                    break;
                }
                if (greedy)
                {
                    int t = CheckedToken(_greedyTokens[r]);
                    if (j < k && t == s.Tokens[n + j]) { accepted++; continue; }
                    next = t;
                    break;
                }
                Span<float> p = _targetProbs;
                s.Sampler.Probabilities(_logits.AsSpan((sampledFirst + j) * _vocab, _vocab), s.Tokens.AsSpan(0, n + j), p);
                if (j == k)
                {
                    next = s.Sampler.Draw(p); // every draft kept: the bonus token, from the target after them
                    break;
                }
                int x = s.Tokens[n + j];
                ReadOnlySpan<float> q = d.Q.AsSpan(j * _vocab, _vocab);
                if (RejectionSampler.Accepts(p[x], q[x], s.Sampler.NextUniform())) { accepted++; continue; }
                next = RejectionSampler.Residual(p, q, s.Sampler.NextUniform());
                break;
            }
        }
        catch (Exception ex)
        {
            error = ex;
        }

        d.Proposed += k;
        d.Accepted += accepted;
        d.Length.Record(k, accepted);
        Interlocked.Add(ref _draftTokens, k);
        Interlocked.Add(ref _draftAccepted, accepted);
        // Valid KV: the tokens before the step's first, that one, and the accepted drafts. Whole blocks past the next
        // position go back; full verified blocks enter the prefix cache.
        s.Computed = n + accepted;
        _kv.Trim(s.Table, s.Computed + 1);
        _kv.CommitFullBlocks(s.Table, s.Tokens.AsSpan(0, s.Computed));
        _draft!.Rollback(s, s.Computed);
        try
        {
            for (int j = 0; j < accepted && !s.Finished; j++) Append(s, s.Tokens[n + j]);
            if (s.Finished) return;
            if (error is not null) Finish(s, FinishReason.Error, error: error);
            else Append(s, next);
        }
        catch (Exception ex)
        {
            Finish(s, FinishReason.Error, error: ex);
        }
    }
}
