using Serving.Engine.Models;

namespace Serving.Engine.Tests.Routing;

/// <summary>
/// A fake model of known confidence: every logit row is 0 except the next token's, which is <see cref="Peak"/>. The
/// next token at position p is (p · <paramref name="stride"/> + <paramref name="offset"/>) mod (V − 1), so two instances
/// with different offsets give different outputs. Peak 0 is the uniform distribution (ln p = −ln V, entropy ln V);
/// a large peak is near certainty (ln p ≈ 0, entropy ≈ 0). <see cref="Pause"/> holds the next Forward calls at their
/// start (after <see cref="StepStarted"/> is released), as a busy device would.
/// </summary>
internal sealed class ConfidenceStepModel(int offset, float peak, int vocab = 32, int context = 64, int blockCount = 64, int stride = 3) : IStepModel
{
    private readonly ManualResetEventSlim _gate = new(true);

    public float Peak { get; set; } = peak;
    public int VocabSize => vocab;
    public int ContextLength => context;
    public int KvBlockSize => 4;
    public int KvBlockCount => blockCount;
    public int MaxBatchTokens => 256;
    public int MaxBatchSequences => 16;

    /// <summary>Released when a Forward call begins.</summary>
    public SemaphoreSlim StepStarted { get; } = new(0);

    public void Pause() => _gate.Reset();

    public void Resume() => _gate.Set();

    public int Next(int position) => (position * stride + offset) % (vocab - 1);

    public void Forward(StepBatch batch, Span<float> logits, Span<int> greedyTokens)
    {
        StepStarted.Release();
        if (!_gate.Wait(TimeSpan.FromSeconds(30))) throw new TimeoutException("The test never resumed the fake model.");
        for (int r = 0, sampled = 0; r < batch.LogitCount; r++)
        {
            int pos = batch.Positions[batch.LogitRows[r]];
            int next = Next(pos);
            if (batch.Greedy[r])
            {
                greedyTokens[r] = next;
                continue;
            }
            var row = logits.Slice(sampled++ * vocab, vocab);
            row.Clear();
            row[next] = Peak;
        }
    }
}
