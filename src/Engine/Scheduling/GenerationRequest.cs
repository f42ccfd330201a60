using Serving.Engine.Sampling;

namespace Serving.Engine.Scheduling;

/// <summary>One generation to run. The scheduler copies <paramref name="PromptTokens"/> at submission.</summary>
/// <param name="Id">Caller's name for the request (logs, errors); need not be unique.</param>
/// <param name="PromptTokens">Prompt token ids, already tokenized (BOS included if the model wants it); non-empty, each in [0, V).</param>
/// <param name="MaxTokens">Most tokens to generate, ≥ 1; generation also stops at the context length.</param>
/// <param name="Sampling">Sampling parameters; null means <see cref="SamplingParams.Greedy"/>.</param>
/// <param name="StopStrings">Text that ends the generation when produced (excluded from the output); null or empty for none.</param>
public sealed record GenerationRequest(
    string Id,
    IReadOnlyList<int> PromptTokens,
    int MaxTokens,
    SamplingParams? Sampling = null,
    IReadOnlyList<string>? StopStrings = null);
