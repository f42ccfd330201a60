namespace Serving.Engine.Scheduling;

/// <summary>A snapshot of a <see cref="Scheduler"/>'s counters (cumulative since start unless said otherwise).</summary>
/// <param name="Running">Sequences in the running batch now.</param>
/// <param name="Waiting">Requests waiting for admission now (preempted ones included).</param>
/// <param name="Completed">Requests that ended with length, stop or end-of-generation.</param>
/// <param name="Failed">Requests that ended with an error.</param>
/// <param name="Cancelled">Requests that were cancelled.</param>
/// <param name="Preemptions">Times a running sequence was preempted for lack of KV blocks.</param>
/// <param name="Refused">Submissions refused as overloaded.</param>
/// <param name="PromptTokens">Prompt tokens of admitted requests (counted at first admission).</param>
/// <param name="GeneratedTokens">Tokens generated.</param>
/// <param name="PrefixCacheHitTokens">Prompt tokens taken from the prefix cache instead of computed (all admissions, re-admissions after preemption included).</param>
/// <param name="ComputedTokens">Tokens run through the model (prefill, recompute and decode).</param>
/// <param name="KvBlocksUsed">KV blocks referenced by running sequences now.</param>
/// <param name="KvBlocksTotal">KV blocks in the cache.</param>
/// <param name="KvBlocksCached">KV blocks holding reusable prefix content now.</param>
/// <param name="KvEvictions">Cached blocks evicted to make room.</param>
/// <param name="Steps">Forward steps run.</param>
/// <param name="MeanBatchSequences">Mean sequences per step.</param>
/// <param name="MeanBatchTokens">Mean tokens per step.</param>
/// <param name="DraftTokens">Speculative decoding: draft tokens proposed and verified by the target (0 without a draft).</param>
/// <param name="DraftAcceptedTokens">Draft tokens the target accepted.</param>
/// <param name="DraftKvBlocksUsed">Blocks of the draft model's KV cache held by sequences now.</param>
/// <param name="DraftKvBlocksTotal">Blocks in the draft model's KV cache (0 without a draft).</param>
/// <param name="StepSeconds">Seconds spent in forward steps (from submitting a step to its logits back, on the scheduler's
/// <see cref="TimeProvider"/>): the time the model held its device.</param>
public sealed record SchedulerMetrics(
    int Running,
    int Waiting,
    long Completed,
    long Failed,
    long Cancelled,
    long Preemptions,
    long Refused,
    long PromptTokens,
    long GeneratedTokens,
    long PrefixCacheHitTokens,
    long ComputedTokens,
    int KvBlocksUsed,
    int KvBlocksTotal,
    int KvBlocksCached,
    long KvEvictions,
    long Steps,
    double MeanBatchSequences,
    double MeanBatchTokens,
    long DraftTokens = 0,
    long DraftAcceptedTokens = 0,
    int DraftKvBlocksUsed = 0,
    int DraftKvBlocksTotal = 0,
    double StepSeconds = 0)
{
    /// <summary>Accepted over proposed draft tokens, or null when none was proposed.</summary>
    public double? DraftAcceptanceRate => DraftTokens > 0 ? (double)DraftAcceptedTokens / DraftTokens : null;
}
