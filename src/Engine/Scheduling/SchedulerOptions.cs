namespace Serving.Engine.Scheduling;

/// <summary>Limits of a <see cref="Scheduler"/>. Batch limits are further capped by the model's own.</summary>
public sealed record SchedulerOptions
{
    /// <summary>Most tokens per forward step (decode tokens plus prefill chunks). Default 256.</summary>
    public int MaxBatchTokens { get; init; } = 256;

    /// <summary>Most sequences running at once (one step carries at most this many). Default 16.</summary>
    public int MaxBatchSequences { get; init; } = 16;

    /// <summary>Most requests waiting for admission; more are refused with <see cref="SchedulerOverloadedException"/>. Default 64.</summary>
    public int MaxQueuedRequests { get; init; } = 64;

    /// <summary>Most prompt tokens summed over waiting requests; more are refused. Default 65 536.</summary>
    public long MaxQueuedPromptTokens { get; init; } = 65_536;

    /// <summary>Reuse cached KV blocks of repeated prompt prefixes. Default true.</summary>
    public bool EnablePrefixCaching { get; init; } = true;

    /// <summary>The environment variable that, set to 0, makes <see cref="Pipelining"/> default to false (to compare
    /// `bench decode`/`bench serve` with and without it in one build).</summary>
    public const string PipeliningVariable = "SERVING_PIPELINING";

    /// <summary>With a model that splits its step (<see cref="Models.IPipelinedStepModel"/>), plan step n+1 while step n
    /// runs on the device. Same steps, same tokens either way; false runs each step start to end (for comparison).
    /// Default true (false when <see cref="PipeliningVariable"/> is 0).</summary>
    public bool Pipelining { get; init; } = Environment.GetEnvironmentVariable(PipeliningVariable) != "0";

    /// <summary>
    /// Speculative decoding with a draft model (docs/speculative.md); null (the default) decodes plainly. With a draft,
    /// steps are not planned ahead (<see cref="Pipelining"/> is ignored): the draft runs between target steps.
    /// </summary>
    public Speculative.SpeculativeOptions? Speculative { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field.</summary>
    public void Validate()
    {
        if (MaxBatchTokens < 1) throw new ArgumentException($"MaxBatchTokens must be ≥ 1; got {MaxBatchTokens}.", nameof(MaxBatchTokens));
        if (MaxBatchSequences < 1) throw new ArgumentException($"MaxBatchSequences must be ≥ 1; got {MaxBatchSequences}.", nameof(MaxBatchSequences));
        // Every request passes through the queue (for a moment at least), so a zero bound would refuse everything.
        if (MaxQueuedRequests < 1) throw new ArgumentException($"MaxQueuedRequests must be ≥ 1; got {MaxQueuedRequests}.", nameof(MaxQueuedRequests));
        Speculative?.Validate();
        if (MaxQueuedPromptTokens < 1) throw new ArgumentException($"MaxQueuedPromptTokens must be ≥ 1; got {MaxQueuedPromptTokens}.", nameof(MaxQueuedPromptTokens));
    }
}
