namespace Serving.Engine.Sampling;

/// <summary>
/// How the next token is chosen from a row of logits. Defaults follow llama.cpp's command-line defaults.
/// The chain is applied in llama.cpp's order: repeat penalty → top-k → top-p → min-p → temperature → draw.
/// Call <see cref="Validate"/> (the <see cref="Sampler"/> constructor does) before use: a record can be built
/// with <c>with</c>, which bypasses any constructor check.
/// </summary>
/// <param name="Temperature">Divides the logits before the draw; 0 means greedy (argmax, first index on ties). Finite, ≥ 0.</param>
/// <param name="TopK">Keep only the K most likely tokens; 0 disables (all tokens). ≥ 0.</param>
/// <param name="TopP">Keep the smallest set of most likely tokens whose probability sums to at least P; 1 disables. In (0, 1].</param>
/// <param name="MinP">Drop tokens whose probability is below MinP × the top token's probability; 0 disables. In [0, 1].</param>
/// <param name="RepeatPenalty">Penalty on tokens seen in the last <paramref name="RepeatLastN"/> tokens (positive logits divided, negative multiplied); 1 disables. Finite, &gt; 0.</param>
/// <param name="RepeatLastN">How many of the most recent tokens (prompt included) the repeat penalty looks at; 0 disables. ≥ 0.</param>
/// <param name="Seed">RNG seed; null picks a random one (reported by <see cref="Sampler.Seed"/>). Same seed, same logits → same tokens on every platform.</param>
public sealed record SamplingParams(
    float Temperature = 0.8f,
    int TopK = 40,
    float TopP = 0.95f,
    float MinP = 0.05f,
    float RepeatPenalty = 1.0f,
    int RepeatLastN = 64,
    ulong? Seed = null)
{
    /// <summary>Greedy decoding: temperature 0, no penalty.</summary>
    public static SamplingParams Greedy { get; } = new(Temperature: 0f);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field that is out of range.</summary>
    public void Validate()
    {
        if (!float.IsFinite(Temperature) || Temperature < 0f)
            throw new ArgumentException($"Temperature must be a finite number ≥ 0 (0 = greedy); got {Temperature}.", nameof(Temperature));
        if (TopK < 0)
            throw new ArgumentException($"TopK must be ≥ 0 (0 = disabled); got {TopK}.", nameof(TopK));
        if (float.IsNaN(TopP) || TopP <= 0f || TopP > 1f)
            throw new ArgumentException($"TopP must be in (0, 1] (1 = disabled); got {TopP}.", nameof(TopP));
        if (float.IsNaN(MinP) || MinP < 0f || MinP > 1f)
            throw new ArgumentException($"MinP must be in [0, 1] (0 = disabled); got {MinP}.", nameof(MinP));
        if (!float.IsFinite(RepeatPenalty) || RepeatPenalty <= 0f)
            throw new ArgumentException($"RepeatPenalty must be a finite number > 0 (1 = disabled); got {RepeatPenalty}.", nameof(RepeatPenalty));
        if (RepeatLastN < 0)
            throw new ArgumentException($"RepeatLastN must be ≥ 0 (0 = disabled); got {RepeatLastN}.", nameof(RepeatLastN));
    }
}
