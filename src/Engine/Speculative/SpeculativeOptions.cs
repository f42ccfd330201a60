using Serving.Engine.Models;

namespace Serving.Engine.Speculative;

/// <summary>
/// Speculative decoding for a <see cref="Scheduling.Scheduler"/> (docs/speculative.md): a draft model sharing the
/// target's vocabulary proposes up to <see cref="MaxDraftTokens"/> tokens per running sequence, and the target
/// verifies them in the same batched step as every other sequence's work. Greedy output is identical to the target's
/// alone; sampled output is distributed as the target's (rejection sampling, Leviathan et al. 2023).
/// </summary>
public sealed record SpeculativeOptions
{
    /// <summary>The draft: a cheaper model over the same vocabulary (a smaller or lower-precision file, or the target
    /// itself with its later layers skipped: <see cref="ModelOptions.LayerLimit"/>). Its KV cache is its own; the
    /// scheduler must be its only user. The scheduler does not own or dispose it.</summary>
    public required IStepModel Draft { get; init; }

    /// <summary>Most draft tokens per sequence per step (k). Default 4. With <see cref="Adaptive"/> each sequence's k
    /// moves between 0 and this from its measured acceptance rate; without it every decode proposes this many.</summary>
    public int MaxDraftTokens { get; init; } = 4;

    /// <summary>Choose each sequence's k from its measured acceptance rate (<see cref="DraftLength"/>). Default true.</summary>
    public bool Adaptive { get; init; } = true;

    /// <summary>
    /// Cost of one draft step relative to one target step, used to choose k: decode is memory bound, so the ratio of
    /// the weight bytes each reads per step is a good estimate (<see cref="LlamaModel.WeightBytes"/>). In (0, 1].
    /// Default 0.25.
    /// </summary>
    public double DraftCostRatio { get; init; } = 0.25;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Draft);
        if (MaxDraftTokens is < 1 or > 32) throw new ArgumentException($"MaxDraftTokens must be in [1, 32]; got {MaxDraftTokens}.", nameof(MaxDraftTokens));
        if (!(DraftCostRatio > 0 && DraftCostRatio <= 1)) throw new ArgumentException($"DraftCostRatio must be in (0, 1]; got {DraftCostRatio}.", nameof(DraftCostRatio));
    }
}
