using Serving.Engine.KvCache;
using Serving.Engine.Models;
using Serving.Engine.Scheduling;

namespace Serving.Engine.Speculative;

/// <summary>
/// Drives the draft model for the scheduler: keeps each sequence's draft KV (its own paged cache, no prefix caching),
/// catches the draft up on the tokens the target accepted, and proposes each sequence's k tokens autoregressively,
/// all sequences batched in one draft step per round. A sequence whose draft KV cannot be reserved proposes nothing
/// that step (it decodes plainly). Touched only by the scheduler loop thread.
/// Legend: V = vocabulary size, K = most draft tokens per sequence.
/// </summary>
internal sealed class DraftRunner
{
    private readonly IStepModel _model;
    private readonly KvBlockManager _kv;
    private readonly StepBatch _batch;
    private readonly Sequence?[] _owners;     // [MaxBatchTokens]: sequence of logit row r
    private readonly float[] _logits;         // [MaxSequences, V] sampled rows of one draft step, packed
    private readonly int[] _greedy;           // [MaxBatchTokens]
    private readonly int _vocab, _blockSize, _context, _maxBlocks, _maxSequences;
    private readonly List<Sequence> _active = [];

    public DraftRunner(SpeculativeOptions options, IStepModel target, int maxSequences)
    {
        options.Validate();
        Options = options;
        _model = options.Draft;
        if (_model.VocabSize != target.VocabSize)
            throw new ArgumentException($"The draft's vocabulary has {_model.VocabSize} tokens, the target's {target.VocabSize}: a draft must share the target's vocabulary.", nameof(options));
        if (_model.MaxBatchSequences < maxSequences || _model.MaxBatchTokens < maxSequences)
            throw new ArgumentException($"The draft runs at most {_model.MaxBatchSequences} sequences / {_model.MaxBatchTokens} tokens per step; the scheduler needs {maxSequences} sequences.", nameof(options));
        _vocab = _model.VocabSize;
        _blockSize = _model.KvBlockSize;
        _context = (int)Math.Min(_model.ContextLength, (long)_model.KvBlockCount * _model.KvBlockSize);
        _maxBlocks = (_context + _blockSize - 1) / _blockSize;
        _maxSequences = maxSequences;
        _kv = new KvBlockManager(_model.KvBlockCount, _blockSize, enablePrefixCaching: false);
        _batch = new StepBatch(_model.MaxBatchTokens, maxSequences, _maxBlocks);
        _owners = new Sequence?[_model.MaxBatchTokens];
        _logits = new float[(long)maxSequences * _vocab];
        _greedy = new int[_model.MaxBatchTokens];
    }

    public SpeculativeOptions Options { get; }

    /// <summary>Draft KV blocks held by sequences now.</summary>
    public int UsedBlocks => _kv.UsedBlockCount;

    /// <summary>Draft KV blocks in all.</summary>
    public int TotalBlocks => _kv.BlockCount;

    /// <summary>The sequence's draft state, created on first use.</summary>
    public DraftState For(Sequence s) =>
        s.Draft ??= new DraftState(_maxBlocks, new DraftLength(Options.MaxDraftTokens, Options.DraftCostRatio, Options.Adaptive));

    /// <summary>Frees the sequence's draft KV (it finished, was cancelled or preempted).</summary>
    public void Release(Sequence s)
    {
        if (s.Draft is not { } d) return;
        _kv.Release(d.Table);
        d.Computed = 0;
        d.K = 0;
    }

    /// <summary>After verification: only the first <paramref name="validTokens"/> tokens of the sequence are known to be
    /// what the draft was fed; its KV past them is dropped, and whole blocks past them are freed.</summary>
    public void Rollback(Sequence s, int validTokens)
    {
        if (s.Draft is not { } d) return;
        d.Computed = Math.Min(d.Computed, validTokens);
        _kv.Trim(d.Table, d.Computed);
        d.K = 0;
    }

    /// <summary>
    /// For each sequence in <paramref name="sequences"/> with a desired k (its <see cref="DraftState.K"/> &gt; 0):
    /// runs the draft on the tokens it has not seen, then proposes up to k tokens, written at
    /// <c>Tokens[Count..Count+K)</c>, with the draft's distributions in <see cref="DraftState.Q"/> for sampled
    /// requests. K ends as the number actually proposed (0 when the draft KV is short or its logits are not finite).
    /// </summary>
    public void Propose(List<Sequence> sequences)
    {
        _active.Clear();
        foreach (Sequence s in sequences)
        {
            DraftState d = For(s);
            int n = s.Count;
            // Fed positions reach n + K − 2; the catch-up feeds up to n − 1.
            d.K = Math.Min(d.K, _context - n + 1);
            if (d.K <= 0 || n > _context) { d.K = 0; continue; }
            if (!_kv.TryReserve(d.Table, n + d.K - 1))
            {
                // Start this sequence's draft over from nothing, which may free enough; else it decodes plainly.
                _kv.Release(d.Table);
                d.Computed = 0;
                if (!_kv.TryReserve(d.Table, n + d.K - 1)) { d.K = 0; continue; }
            }
            if (!s.Sampler.IsArgmax && (d.Q is null || d.Q.Length < d.K * _vocab)) d.Q = new float[Options.MaxDraftTokens * _vocab];
            _active.Add(s);
        }
        if (_active.Count == 0) return;

        // Round 0: catch up (prompt, accepted tokens, the target's last token), in chunks if long; the last fed
        // token's logits give the first draft token.
        while (true)
        {
            Clear();
            int budget = _model.MaxBatchTokens;
            foreach (Sequence s in _active)
            {
                DraftState d = s.Draft!;
                int left = s.Count - d.Computed;
                if (left <= 0 || budget <= 0 || _batch.SequenceCount == _maxSequences) continue;
                int take = Math.Min(left, budget);
                Add(s, d.Computed, take, wantLast: take == left);
                budget -= take;
            }
            if (_batch.TokenCount == 0) break;
            Run();
            Advance(round: 0);
        }
        // Rounds 1..: feed the previous draft token, get the next one.
        for (int j = 1; ; j++)
        {
            Clear();
            foreach (Sequence s in _active)
            {
                DraftState d = s.Draft!;
                if (d.K > j) Add(s, s.Count + j - 1, 1, wantLast: true);
            }
            if (_batch.TokenCount == 0) break;
            Run();
            Advance(round: j);
        }
    }

    private void Clear()
    {
        Array.Clear(_owners, 0, _batch.LogitCount);
        _batch.Clear();
    }

    private void Add(Sequence s, int from, int count, bool wantLast)
    {
        DraftState d = s.Draft!;
        int row = _batch.SequenceCount++;
        ReadOnlySpan<int> blocks = d.Table.Blocks;
        blocks.CopyTo(_batch.BlockTables.AsSpan(row * _batch.MaxBlocksPerSequence, _batch.MaxBlocksPerSequence));
        for (int i = 0; i < count; i++)
        {
            int pos = from + i;
            bool logits = wantLast && i == count - 1;
            if (logits) _owners[_batch.LogitCount] = s;
            _batch.AddToken(s.Tokens[pos], pos, row, blocks[pos / _blockSize] * _blockSize + pos % _blockSize, logits, greedy: logits && s.Sampler.IsArgmax);
        }
        d.Computed = from + count; // valid once the step has run (Run throws otherwise, and the scheduler faults)
    }

    private void Run()
    {
        try
        {
            _model.Forward(_batch, _logits.AsSpan(0, (_batch.LogitCount - _batch.GreedyCount) * _vocab), _greedy);
        }
        catch (Exception ex)
        {
            throw new ModelStepException(-1, _batch.SequenceCount, _batch.TokenCount, ex);
        }
    }

    /// <summary>Takes each logit row's draft token (position Count + round of its sequence).</summary>
    private void Advance(int round)
    {
        for (int r = 0, sampled = 0; r < _batch.LogitCount; r++)
        {
            Sequence s = _owners[r]!;
            DraftState d = s.Draft!;
            int at = s.Count + round;
            ReadOnlySpan<float> logits = _batch.Greedy[r] ? default : _logits.AsSpan(sampled++ * _vocab, _vocab);
            if (_batch.NonFinite[r])
            {
                d.K = round; // what was proposed before stands; nothing more from this sequence
                continue;
            }
            int token;
            if (_batch.Greedy[r]) token = (uint)_greedy[r] < (uint)_vocab ? _greedy[r] : 0;
            else
            {
                Span<float> q = d.Q.AsSpan(round * _vocab, _vocab);
                s.Sampler.Probabilities(logits, s.Tokens.AsSpan(0, at), q);
                token = s.Sampler.Draw(q);
            }
            s.Tokens[at] = token;
        }
    }
}
