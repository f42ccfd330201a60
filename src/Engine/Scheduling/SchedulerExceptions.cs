namespace Serving.Engine.Scheduling;

/// <summary>Which bound of the waiting queue refused a request.</summary>
public enum QueueLimit
{
    /// <summary><see cref="SchedulerOptions.MaxQueuedRequests"/>.</summary>
    Requests,
    /// <summary><see cref="SchedulerOptions.MaxQueuedPromptTokens"/>.</summary>
    PromptTokens,
}

/// <summary>The waiting queue is full; nothing was queued. Retriable: try again later or elsewhere.</summary>
public sealed class SchedulerOverloadedException : Exception
{
    /// <summary>Creates the error for the bound that was hit, with its value.</summary>
    public SchedulerOverloadedException(QueueLimit limit, long limitValue)
        : base($"Server overloaded: the waiting queue is at its limit of {limitValue} {(limit == QueueLimit.Requests ? "requests" : "prompt tokens")}. Retry later.")
    {
        Limit = limit;
        LimitValue = limitValue;
    }

    /// <summary>The bound that was hit.</summary>
    public QueueLimit Limit { get; }

    /// <summary>Its configured value.</summary>
    public long LimitValue { get; }

    /// <summary>Always true: the same request may succeed later.</summary>
    public bool IsRetriable => true;
}

/// <summary>The prompt does not fit the context (at least one position must remain for a generated token).</summary>
public sealed class ContextLengthExceededException : ArgumentException
{
    /// <summary>Creates the error with both counts.</summary>
    public ContextLengthExceededException(int promptTokens, int contextLength)
        : base($"The prompt has {promptTokens} tokens; the context holds {contextLength}, so at most {contextLength - 1} prompt tokens fit.")
    {
        PromptTokens = promptTokens;
        ContextLength = contextLength;
    }

    /// <summary>Tokens in the prompt.</summary>
    public int PromptTokens { get; }

    /// <summary>Positions one sequence may hold (model context, capped by the KV cache size).</summary>
    public int ContextLength { get; }
}

/// <summary>Why the scheduler takes no new requests.</summary>
public enum SchedulerState
{
    /// <summary>Taking requests.</summary>
    Accepting,
    /// <summary><see cref="Scheduler.DrainAsync"/> was called: finishing accepted work, refusing new.</summary>
    Draining,
    /// <summary>A model step failed; every request was failed and the scheduler stopped.</summary>
    Faulted,
    /// <summary>Disposed.</summary>
    Disposed,
}

/// <summary>The scheduler is draining, faulted or disposed and takes no new requests.</summary>
public sealed class SchedulerUnavailableException : InvalidOperationException
{
    /// <summary>Creates the error for <paramref name="state"/>; <paramref name="cause"/> is the fault, if any.</summary>
    public SchedulerUnavailableException(SchedulerState state, Exception? cause)
        : base(state switch
        {
            SchedulerState.Draining => "The scheduler is shutting down and takes no new requests.",
            SchedulerState.Faulted => $"The scheduler stopped after a model failure: {cause?.Message}",
            _ => "The scheduler is disposed.",
        }, cause)
    {
        State = state;
    }

    /// <summary>The state that refused the request.</summary>
    public SchedulerState State { get; }
}

/// <summary>The model threw during a forward step. Every request in flight fails with this error; the scheduler stops.</summary>
public sealed class ModelStepException : Exception
{
    /// <summary>Creates the error for step number <paramref name="step"/> carrying <paramref name="sequences"/> sequences and <paramref name="tokens"/> tokens.</summary>
    public ModelStepException(long step, int sequences, int tokens, Exception inner)
        : base($"The model failed in forward step {step} ({sequences} sequences, {tokens} tokens): {inner.Message}", inner)
    {
        Step = step;
    }

    /// <summary>The step number (0-based) that failed.</summary>
    public long Step { get; }
}

/// <summary>
/// A forward step produced NaN or infinite logits for this request (<see cref="Models.StepBatch.NonFinite"/>): its next
/// token would be garbage, so the request fails instead. Usually the weights are corrupt or poisoned (a load with
/// <c>--check-tensors</c> finds where); otherwise the activations overflowed. Only the affected requests fail: the
/// device is not marked faulted.
/// </summary>
public sealed class NonFiniteLogitsException : Exception
{
    /// <summary>Creates the exception for a request whose logits at <paramref name="position"/> were not finite.</summary>
    public NonFiniteLogitsException(int position, int promptTokens)
        : base($"the model produced NaN or infinite logits at position {position} (prompt of {promptTokens} tokens); " +
               "the weights may be corrupt or poisoned: load the model with --check-tensors to find out")
    {
        Position = position;
        PromptTokens = promptTokens;
    }

    /// <summary>Position of the token whose logits were not finite.</summary>
    public int Position { get; }

    /// <summary>Prompt length of the request.</summary>
    public int PromptTokens { get; }
}
