using Serving.Engine.Sampling;

namespace Serving.Engine.Scheduling;

/// <summary>One generation to run. The scheduler copies <paramref name="PromptTokens"/> at submission.</summary>
/// <param name="Id">Caller's name for the request (logs, errors); need not be unique.</param>
/// <param name="PromptTokens">Prompt token ids, already tokenized (BOS included if the model wants it); non-empty, each in [0, V).</param>
/// <param name="MaxTokens">Most tokens to generate, ≥ 1; generation also stops at the context length.</param>
/// <param name="Sampling">Sampling parameters; null means <see cref="SamplingParams.Greedy"/>.</param>
/// <param name="StopStrings">Text that ends the generation when produced (excluded from the output); null or empty for none.</param>
/// <param name="ScoreTokens">Give every generated token's chunk the model's log-probability of that token and the entropy of
/// its distribution (<see cref="GenerationChunk.LogProb"/>, <see cref="GenerationChunk.Entropy"/>; the raw logits at
/// temperature 1, before penalties and truncation). Costs one pass over V logits per token, and a greedy request's rows
/// then return logits instead of the device's argmax (same tokens). Used by tier routing to judge a model's confidence.</param>
public sealed record GenerationRequest(
    string Id,
    IReadOnlyList<int> PromptTokens,
    int MaxTokens,
    SamplingParams? Sampling = null,
    IReadOnlyList<string>? StopStrings = null,
    bool ScoreTokens = false);
