using System.Diagnostics;
using System.Threading.Channels;
using Serving.Engine.Scheduling;

namespace Serving.Engine.Routing;

/// <summary>
/// Runs requests on a server's model tiers (cheapest first) as <see cref="TierPolicy"/> decides. A probed request's first
/// tokens are held back until its tier is settled, so a client never sees text that is then retracted. Escalation
/// restarts the request from its prompt on the costlier tier (the same sampling parameters and seed): the costlier
/// model's answer does not depend on the cheaper one's tokens, and the cheaper tier's request is cancelled (its KV
/// blocks freed) once the costlier tier has accepted the request. If that tier refuses it (queue full, not ready), the
/// cheaper tier keeps it. Cancelling the caller's token cancels whichever tier holds the request, both during the
/// hand-over.
/// </summary>
public sealed class TierRouter
{
    /// <summary>A router over <paramref name="tiers"/>, ordered cheapest first; names must be distinct.</summary>
    public TierRouter(IReadOnlyList<Tier> tiers, TierPolicy? policy = null)
    {
        ArgumentNullException.ThrowIfNull(tiers);
        if (tiers.Count == 0) throw new ArgumentException("At least one tier is needed.", nameof(tiers));
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tiers)
            if (!names.Add(t.Name)) throw new ArgumentException($"Two tiers are named '{t.Name}'.", nameof(tiers));
        Tiers = tiers;
        Policy = policy ?? new TierPolicy();
    }

    /// <summary>The tiers, cheapest first.</summary>
    public IReadOnlyList<Tier> Tiers { get; }

    /// <summary>The policy deciding auto requests.</summary>
    public TierPolicy Policy { get; }

    /// <summary>The index of the tier named <paramref name="name"/>, or −1.</summary>
    public int IndexOf(string name)
    {
        for (int i = 0; i < Tiers.Count; i++)
            if (Tiers[i].Name == name) return i;
        return -1;
    }

    /// <summary>Every tier's state now.</summary>
    public TierState[] Snapshot()
    {
        var states = new TierState[Tiers.Count];
        for (int i = 0; i < states.Length; i++) states[i] = Tiers[i].Snapshot();
        return states;
    }

    /// <summary>
    /// Routes <paramref name="request"/> and submits it to the tier it starts on; throws what that tier's
    /// <see cref="Scheduler.Submit"/> throws (bad request, context exceeded, overloaded, unavailable).
    /// </summary>
    public RoutedGeneration Submit(GenerationRequest request, TierRoute route, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (route.Tier is { } named && (uint)named >= (uint)Tiers.Count)
            throw new ArgumentOutOfRangeException(nameof(route), $"Tier {named} does not exist ({Tiers.Count} tiers).");
        long start = Stopwatch.GetTimestamp();
        int prompt = request.PromptTokens?.Count ?? 0;
        var choice = Policy.Choose(prompt, request.MaxTokens, route, Snapshot());
        Tier tier = Tiers[choice.Tier];
        GenerationHandle handle = tier.Scheduler.Submit(request with { ScoreTokens = choice.Probe }, cancellationToken);
        tier.CountStarted();
        var channel = Channel.CreateUnbounded<GenerationChunk>(new UnboundedChannelOptions { SingleWriter = true, SingleReader = false });
        var run = new Run(this, request, route, channel.Writer, start, cancellationToken);
        return new RoutedGeneration(request.Id, channel.Reader, run.ExecuteAsync(choice, handle));
    }

    /// <summary>One request's way through the tiers.</summary>
    private sealed class Run(TierRouter router, GenerationRequest request, TierRoute route, ChannelWriter<GenerationChunk> writer,
        long start, CancellationToken ct)
    {
        private TimeSpan? _firstChunk;

        public async Task<RoutedResult> ExecuteAsync(TierChoice choice, GenerationHandle handle)
        {
            int index = choice.Tier;
            TierReason reason = choice.Reason;
            bool probe = choice.Probe;
            Confidence? confidence = null;
            var tried = new List<string> { router.Tiers[index].Name };
            int promptTokens = request.PromptTokens.Count;
            try
            {
                while (true)
                {
                    Tier tier = router.Tiers[index];
                    if (probe)
                    {
                        var (held, c) = await ProbeAsync(handle, router.Policy.Options.ProbeTokens).ConfigureAwait(false);
                        confidence = c;
                        bool ended = handle.Completion.IsCompleted
                                     && handle.Completion.Result.FinishReason is FinishReason.Cancelled or FinishReason.Error;
                        var verdict = ct.IsCancellationRequested || ended
                            ? new TierVerdict(false, index, reason)
                            : router.Policy.Judge(c, index, promptTokens, request.MaxTokens, route, router.Snapshot());
                        if (verdict.Escalate)
                        {
                            Tier next = router.Tiers[verdict.Next];
                            bool nextProbe = router.Policy.ShouldProbe(verdict.Next, promptTokens, request.MaxTokens, router.Snapshot());
                            GenerationHandle? moved = null;
                            try
                            {
                                moved = next.Scheduler.Submit(request with { ScoreTokens = nextProbe }, ct);
                            }
                            catch (Exception e) when (e is SchedulerOverloadedException or SchedulerUnavailableException or ArgumentException)
                            {
                                verdict = new TierVerdict(false, index, TierReason.EscalationRefused);
                            }
                            if (moved is not null)
                            {
                                next.CountStarted();
                                // The costlier tier has the request: the cheaper one's is dropped, and its blocks freed
                                // before this continues (its completion comes after the scheduler released them).
                                handle.Cancel();
                                Observe(tier, await handle.Completion.ConfigureAwait(false));
                                tier.CountEscalation();
                                handle = moved;
                                index = verdict.Next;
                                probe = nextProbe;
                                reason = TierReason.LowConfidence;
                                tried.Add(next.Name);
                                continue;
                            }
                        }
                        if (!ct.IsCancellationRequested && !ended) reason = verdict.Reason;
                        foreach (var chunk in held) Write(chunk);
                    }
                    await foreach (var chunk in handle.Chunks.ReadAllAsync(CancellationToken.None).ConfigureAwait(false)) Write(chunk);
                    GenerationResult result = await handle.Completion.ConfigureAwait(false);
                    Observe(tier, result);
                    tier.CountAnswered();
                    if (reason is TierReason.Shed or TierReason.EscalationRefused) tier.CountShed();
                    return new RoutedResult(result, tier, reason, confidence, tried, _firstChunk, Stopwatch.GetElapsedTime(start));
                }
            }
            catch (Exception e)
            {
                // Never expected; the request still ends, with nothing left running on any tier.
                handle.Cancel();
                var failed = new GenerationResult(request.Id, FinishReason.Error, [], "", null, 0,
                    new GenerationUsage(promptTokens, 0, 0, null, null, Stopwatch.GetElapsedTime(start), null, 0), e);
                return new RoutedResult(failed, router.Tiers[index], reason, confidence, tried, _firstChunk, Stopwatch.GetElapsedTime(start));
            }
            finally
            {
                writer.TryComplete();
            }
        }

        /// <summary>Reads chunks until <paramref name="tokens"/> tokens are scored or the generation ends; they are held, not sent.</summary>
        private static async Task<(List<GenerationChunk> Held, Confidence Confidence)> ProbeAsync(GenerationHandle handle, int tokens)
        {
            var held = new List<GenerationChunk>();
            var c = new Confidence();
            var reader = handle.Chunks;
            while (c.Tokens < tokens && await reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
                while (c.Tokens < tokens && reader.TryRead(out var chunk))
                {
                    held.Add(chunk);
                    if (!float.IsNaN(chunk.LogProb)) c = c.Add(chunk.LogProb, chunk.Entropy);
                }
            return (held, c);
        }

        private static void Observe(Tier tier, GenerationResult result)
        {
            if (result.Usage.TimePerOutputToken is { } tpot) tier.ObserveTpot(tpot);
        }

        private void Write(GenerationChunk chunk)
        {
            if (_firstChunk is null && (chunk.Text.Length > 0 || chunk.TokenId >= 0)) _firstChunk = Stopwatch.GetElapsedTime(start);
            writer.TryWrite(chunk);
        }
    }
}
