using Serving.Engine.KvCache;

namespace Serving.Engine.Speculative;

/// <summary>One sequence's state in the draft model: its KV blocks there, how far that KV is valid, and its k chooser.
/// Touched only by the scheduler loop thread.</summary>
internal sealed class DraftState(int maxBlocks, DraftLength length)
{
    /// <summary>The sequence's blocks in the draft's KV cache.</summary>
    public BlockTable Table { get; } = new(maxBlocks);

    /// <summary>Leading tokens of the sequence whose draft KV is valid (written for the tokens the sequence holds).</summary>
    public int Computed { get; set; }

    /// <summary>Chooses k from the measured acceptance rate.</summary>
    public DraftLength Length { get; } = length;

    /// <summary>Draft tokens proposed for the step being built (written at the sequence's Tokens[Count..Count+K)).</summary>
    public int K { get; set; }

    /// <summary>[MaxDraftTokens, V] the draft's distribution at each proposed token (sampled requests; null for greedy).</summary>
    public float[]? Q { get; set; }

    /// <summary>Draft tokens proposed and accepted over the request (its usage).</summary>
    public int Proposed { get; set; }

    /// <summary>Draft tokens the target accepted over the request.</summary>
    public int Accepted { get; set; }
}
