using Microsoft.Extensions.Time.Testing;
using Serving.Engine.Models;

namespace Serving.Engine.Tests.Scheduling;

/// <summary>
/// A toy decoder that behaves like a real one towards the scheduler: it keeps its own paged "KV cache" (one value
/// per slot: the token and position written there), writes each step's tokens at their slots, and computes a
/// row's logits from the sequence's history read back through the block table. So a scheduler bug that mixes
/// blocks, forgets to recompute after preemption or reuses a stale cached block changes the tokens, and
/// inconsistent positions/slots/block tables throw. Logits depend only on the history: batch invariant.
/// The last vocabulary id is never generated (logit −100): tests use it as a "special" prompt token.
/// Time: every step moves <see cref="Clock"/> forward by exactly <see cref="StepTime"/> (once the step is let
/// through the pause gate), so a scheduler on that clock reports times that are whole numbers of steps.
/// </summary>
internal sealed class FakeStepModel : IStepModel
{
    private const long Empty = long.MinValue;
    private readonly long[] _kv; // [KvBlockCount · KvBlockSize] (token << 32 | position), Empty if never written
    private readonly ManualResetEventSlim _gate = new(true);
    private readonly Lock _log = new();
    private readonly List<StepRecord> _steps = [];

    public FakeStepModel(int vocab = 32, int context = 64, int blockSize = 4, int blockCount = 64,
        int maxBatchTokens = 512, int maxBatchSequences = 64)
    {
        VocabSize = vocab;
        ContextLength = context;
        KvBlockSize = blockSize;
        KvBlockCount = blockCount;
        MaxBatchTokens = maxBatchTokens;
        MaxBatchSequences = maxBatchSequences;
        _kv = new long[blockCount * blockSize];
        Array.Fill(_kv, Empty);
    }

    public int VocabSize { get; }
    public int ContextLength { get; }
    public int KvBlockSize { get; }
    public int KvBlockCount { get; }
    public int MaxBatchTokens { get; }
    public int MaxBatchSequences { get; }

    /// <summary>The fake clock the scheduler under test reads; only <see cref="Forward"/> moves it.</summary>
    public FakeTimeProvider Clock { get; } = new();

    /// <summary>How far one Forward call moves <see cref="Clock"/>. Default 10 ms.</summary>
    public TimeSpan StepTime { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>1-based Forward call that throws, or 0 for never.</summary>
    public int ThrowOnCall { get; set; }

    /// <summary>A token id whose presence in a row's history makes that row's logits non-finite (as poisoned weights would), or −1.</summary>
    public int NonFiniteToken { get; set; } = -1;

    /// <summary>1-based Forward call at which the model pauses itself (as if <see cref="Pause"/> had been called), or 0.</summary>
    public int PauseAtCall { get; set; }

    /// <summary>Released when a Forward call begins (before the gate).</summary>
    public SemaphoreSlim StepStarted { get; } = new(0);

    public record struct StepRecord(int Tokens, int Sequences, int LogitRows, int GreedyRows = 0);

    public IReadOnlyList<StepRecord> Steps { get { lock (_log) return [.. _steps]; } }

    /// <summary>Makes the next Forward calls wait until <see cref="Resume"/>.</summary>
    public void Pause() => _gate.Reset();

    public void Resume() => _gate.Set();

    public void Forward(StepBatch batch, Span<float> logits, Span<int> greedyTokens)
    {
        int call;
        lock (_log)
        {
            _steps.Add(new StepRecord(batch.TokenCount, batch.SequenceCount, batch.LogitCount, batch.GreedyCount));
            call = _steps.Count;
        }
        if (call == PauseAtCall) _gate.Reset();
        StepStarted.Release();
        // A hang guard on the real clock (never reached when a test works), not a delay.
        if (!_gate.Wait(TimeSpan.FromSeconds(30))) throw new TimeoutException("The test never resumed the fake model.");
        Clock.Advance(StepTime);
        if (call == ThrowOnCall) throw new InvalidOperationException("injected device fault");

        int t = batch.TokenCount, s = batch.SequenceCount, m = batch.MaxBlocksPerSequence, bs = KvBlockSize;
        Check(t >= 1 && t <= MaxBatchTokens, $"token count {t}");
        Check(s >= 1 && s <= MaxBatchSequences, $"sequence count {s}");
        int sampledRows = batch.LogitCount - batch.GreedyCount;
        Check(logits.Length == sampledRows * VocabSize, $"logits length {logits.Length} for {sampledRows} sampled rows");
        Check(batch.GreedyCount == 0 || greedyTokens.Length >= batch.LogitCount, $"greedy span of {greedyTokens.Length} for {batch.LogitCount} rows");

        // Blocks each row uses in this step: up to its highest position.
        var rowBlocks = new int[s];
        for (int i = 0; i < t; i++)
        {
            int row = batch.SequenceRows[i], pos = batch.Positions[i];
            Check(row >= 0 && row < s, $"sequence row {row}");
            Check(pos >= 0 && pos < ContextLength, $"position {pos}");
            Check(batch.Tokens[i] >= 0 && batch.Tokens[i] < VocabSize, $"token {batch.Tokens[i]}");
            rowBlocks[row] = Math.Max(rowBlocks[row], pos / bs + 1);
            int block = batch.BlockTables[row * m + pos / bs];
            Check(block >= 0 && block < KvBlockCount, $"block {block}");
            Check(batch.Slots[i] == block * bs + pos % bs, $"slot {batch.Slots[i]} for position {pos} in block {block}");
        }
        for (int i = 0; i < t; i++)
        {
            int row = batch.SequenceRows[i], block = batch.Slots[i] / bs;
            // A block another sequence also reads must never be written (shared prefix blocks are read-only).
            for (int other = 0; other < s; other++)
            {
                if (other == row) continue;
                for (int j = 0; j < rowBlocks[other]; j++)
                    Check(batch.BlockTables[other * m + j] != block, $"row {row} writes block {block} that row {other} also uses");
            }
            _kv[batch.Slots[i]] = ((long)batch.Tokens[i] << 32) | (uint)batch.Positions[i];
        }
        var greedyRow = new float[VocabSize];
        for (int r = 0, sampled = 0; r < batch.LogitCount; r++)
        {
            int i = batch.LogitRows[r];
            Check(r == 0 || i > batch.LogitRows[r - 1], "logit rows not ascending");
            int row = batch.SequenceRows[i], pos = batch.Positions[i];
            ulong h = HistorySeed;
            bool poisoned = false;
            for (int p = 0; p <= pos; p++)
            {
                long v = _kv[batch.BlockTables[row * m + p / bs] * bs + p % bs];
                Check(v != Empty && (int)(v & 0xFFFFFFFF) == p, $"row {row} position {p} reads a slot holding {(v == Empty ? "nothing" : $"position {(int)(v & 0xFFFFFFFF)}")}");
                h = Mix(h ^ (ulong)((v >> 32) + 1));
                poisoned |= (int)(v >> 32) == NonFiniteToken;
            }
            batch.NonFinite[r] = poisoned;
            if (batch.Greedy[r])
            {
                // As a device Argmax: the first index of the largest logit.
                FillLogits(h, greedyRow);
                int best = 0;
                for (int v = 1; v < VocabSize; v++) if (greedyRow[v] > greedyRow[best]) best = v;
                greedyTokens[r] = best;
            }
            else
                FillLogits(h, logits.Slice(sampled++ * VocabSize, VocabSize));
        }
    }

    /// <summary>The greedy continuation computed directly, without paging: the oracle for scheduler tests.</summary>
    public int[] ReferenceGreedy(IReadOnlyList<int> prompt, int maxTokens, int endOfGeneration = -1)
    {
        var history = new List<int>(prompt);
        var output = new List<int>();
        var row = new float[VocabSize];
        while (output.Count < maxTokens && history.Count < ContextLength)
        {
            ulong h = HistorySeed;
            foreach (int token in history) h = Mix(h ^ (ulong)(token + 1));
            FillLogits(h, row);
            int best = 0;
            for (int v = 1; v < VocabSize; v++) if (row[v] > row[best]) best = v;
            if (best == endOfGeneration) break;
            output.Add(best);
            history.Add(best);
        }
        return [.. output];
    }

    private const ulong HistorySeed = 0xCBF29CE484222325UL;

    /// <summary>
    /// Noise added to every logit, in [0, Perturbation), from a hash of the history and <see cref="PerturbationSeed"/>:
    /// a second fake with the same vocabulary and a perturbation is a draft that agrees with the unperturbed target on
    /// some histories and not others (speculative decoding tests). 0 (the default) adds nothing.
    /// </summary>
    public float Perturbation { get; init; }

    /// <summary>Seed of the <see cref="Perturbation"/> noise.</summary>
    public ulong PerturbationSeed { get; init; } = 0x5EED;

    /// <summary>The logits this fake returns after <paramref name="history"/> (prompt and generated tokens), computed directly.</summary>
    public float[] ReferenceLogits(IReadOnlyList<int> history)
    {
        ulong h = HistorySeed;
        foreach (int token in history) h = Mix(h ^ (ulong)(token + 1));
        var row = new float[VocabSize];
        FillLogits(h, row);
        return row;
    }

    private void FillLogits(ulong h, Span<float> row)
    {
        for (int v = 0; v < row.Length; v++)
        {
            row[v] = (Mix(h + (ulong)v * 0x9E3779B97F4A7C15UL) >> 40) / (float)(1 << 24) * 8f;
            if (Perturbation > 0)
                row[v] += (Mix((h ^ PerturbationSeed) + (ulong)v * 0xD1B54A32D192ED03UL) >> 40) / (float)(1 << 24) * Perturbation;
        }
        row[^1] = -100f;
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static void Check(bool ok, string what)
    {
        if (!ok) throw new InvalidOperationException($"Fake model: inconsistent batch: {what}.");
    }
}

/// <summary>
/// The fake model split at submission, as a device model is: <see cref="BeginForward"/> takes the batch,
/// <see cref="EndForward"/> runs the fake's step on it. Checks the scheduler's side of the contract: calls alternate,
/// and the begun batch is not touched until the step ends (the scheduler plans the next step into another batch).
/// </summary>
internal sealed class PipelinedFakeModel(FakeStepModel inner) : IPipelinedStepModel
{
    private StepBatch? _begun;
    private int[] _snapshot = [];

    public int VocabSize => inner.VocabSize;
    public int ContextLength => inner.ContextLength;
    public int KvBlockSize => inner.KvBlockSize;
    public int KvBlockCount => inner.KvBlockCount;
    public int MaxBatchTokens => inner.MaxBatchTokens;
    public int MaxBatchSequences => inner.MaxBatchSequences;

    /// <summary>Steps run through BeginForward/EndForward.</summary>
    public int SplitSteps { get; private set; }

    public void Forward(StepBatch batch, Span<float> logits, Span<int> greedyTokens) => inner.Forward(batch, logits, greedyTokens);

    public void BeginForward(StepBatch batch)
    {
        if (_begun is not null) throw new InvalidOperationException("Fake model: BeginForward twice without EndForward.");
        _begun = batch;
        _snapshot = Snapshot(batch);
    }

    public void EndForward(Span<float> logits, Span<int> greedyTokens)
    {
        StepBatch batch = _begun ?? throw new InvalidOperationException("Fake model: EndForward without BeginForward.");
        _begun = null;
        if (!Snapshot(batch).AsSpan().SequenceEqual(_snapshot))
            throw new InvalidOperationException("Fake model: the scheduler changed the batch of the step in flight.");
        SplitSteps++;
        inner.Forward(batch, logits, greedyTokens);
    }

    private static int[] Snapshot(StepBatch b)
    {
        int t = b.TokenCount, r = b.LogitCount;
        return [t, b.SequenceCount, r, b.GreedyCount, .. b.Tokens.AsSpan(0, t), .. b.Positions.AsSpan(0, t), .. b.SequenceRows.AsSpan(0, t),
            .. b.Slots.AsSpan(0, t), .. b.LogitRows.AsSpan(0, r), .. b.Greedy.AsSpan(0, r).ToArray().Select(g => g ? 1 : 0),
            .. b.BlockTables.AsSpan(0, b.SequenceCount * b.MaxBlocksPerSequence)];
    }
}

/// <summary>
/// Token i decodes to two characters: a letter and a digit ("a0", "b1", …). Decoding fails on the vocabulary's
/// last id (the "poison" token, which the fake model never generates) so a test can make one request's decoder throw.
/// </summary>
internal sealed class FakeDecoder(int vocab, int endOfGeneration = -1) : Serving.Engine.Scheduling.ITokenDecoder
{
    public static string Piece(int token) => $"{(char)('a' + token % 26)}{token % 10}";

    public string Decode(ReadOnlySpan<int> tokens)
    {
        var sb = new System.Text.StringBuilder(tokens.Length * 2);
        foreach (int t in tokens)
        {
            if (t == vocab - 1) throw new InvalidOperationException("poison token");
            sb.Append(Piece(t));
        }
        return sb.ToString();
    }

    public bool IsEndOfGeneration(int token) => token == endOfGeneration;
}
