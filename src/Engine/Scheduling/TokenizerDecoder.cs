using Serving.Engine.Tokenizers;

namespace Serving.Engine.Scheduling;

/// <summary>
/// A model's tokenizer as the scheduler's <see cref="ITokenDecoder"/>. <paramref name="ignoreEndOfGeneration"/>
/// keeps generating past end-of-generation tokens (benchmarks that need a fixed output length).
/// </summary>
public sealed class TokenizerDecoder(Tokenizer tokenizer, bool ignoreEndOfGeneration = false) : ITokenDecoder
{
    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> tokens) => tokenizer.Decode(tokens);

    /// <inheritdoc/>
    public bool IsEndOfGeneration(int token) => !ignoreEndOfGeneration && tokenizer.IsEndOfGeneration(token);
}
