using System.Text;
using System.Threading.Channels;
using Serving.Engine.KvCache;
using Serving.Engine.Sampling;

namespace Serving.Engine.Scheduling;

/// <summary>
/// The scheduler's state for one request. Everything but <see cref="CancelRequested"/> is touched only by the
/// scheduler loop thread.
/// </summary>
internal sealed class Sequence
{
    private readonly Channel<GenerationChunk> _channel;
    private readonly TaskCompletionSource<GenerationResult> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Scheduler _owner;
    private volatile bool _cancelRequested;

    public Sequence(Scheduler owner, GenerationRequest request, int[] tokens, int promptLength, int maxBlocks,
        Sampler sampler, StopMatcher stop, IncrementalDetokenizer detokenizer, long submittedAt)
    {
        _owner = owner;
        Request = request;
        Tokens = tokens;
        Count = promptLength;
        PromptLength = promptLength;
        Table = new BlockTable(maxBlocks);
        Sampler = sampler;
        Stop = stop;
        Detokenizer = detokenizer;
        SubmittedAt = submittedAt;
        _channel = Channel.CreateUnbounded<GenerationChunk>(new UnboundedChannelOptions { SingleWriter = true, SingleReader = false });
        Handle = new GenerationHandle(this, _channel.Reader, _completion.Task);
    }

    public GenerationRequest Request { get; }

    public GenerationHandle Handle { get; }

    /// <summary>[min(prompt + MaxTokens, context)] prompt then generated ids; the first <see cref="Count"/> are valid.</summary>
    public int[] Tokens { get; }

    public int Count { get; set; }

    public int PromptLength { get; }

    /// <summary>Leading tokens whose KV is in the cache (matched or computed). Count − Computed remain to run.</summary>
    public int Computed { get; set; }

    public int Pending => Count - Computed;

    public int Generated => Count - PromptLength;

    public BlockTable Table { get; }

    public Sampler Sampler { get; }

    public StopMatcher Stop { get; }

    public IncrementalDetokenizer Detokenizer { get; }

    public StringBuilder Text { get; } = new();

    public CancellationTokenRegistration Registration { get; set; }

    public bool CancelRequested => _cancelRequested;

    /// <summary>Still counted in the waiting-queue limits (never admitted yet).</summary>
    public bool CountsInQueue { get; set; } = true;

    public bool Admitted { get; set; }

    public bool Finished { get; set; }

    /// <summary>Scheduled in the step being built, with <see cref="StepTokens"/> tokens.</summary>
    public bool InStep { get; set; }

    public int StepTokens { get; set; }

    public int CachedPromptTokens { get; set; }

    /// <summary>Its state in the draft model (speculative decoding only; created on first proposal).</summary>
    public Speculative.DraftState? Draft { get; set; }

    public int Preemptions { get; set; }

    // Timestamps of the scheduler's TimeProvider (GetTimestamp units).
    public long SubmittedAt { get; }

    public long AdmittedAt { get; set; }

    public long FirstTokenAt { get; set; }

    public long LastTokenAt { get; set; }

    public void RequestCancel()
    {
        if (_cancelRequested) return;
        _cancelRequested = true;
        _owner.NotifyCancel();
    }

    /// <summary>Whether its logit rows return the device's argmax instead of logits: a greedy sampler, unless the
    /// request wants each token scored (<see cref="GenerationRequest.ScoreTokens"/>), which needs the logits.</summary>
    public bool GreedyRow => Sampler.IsArgmax && !Request.ScoreTokens;

    public void Emit(int tokenId, string text, float logProb = float.NaN, float entropy = float.NaN)
    {
        Text.Append(text);
        _channel.Writer.TryWrite(new GenerationChunk(tokenId, text, logProb, entropy));
    }

    public void Complete(GenerationResult result)
    {
        _channel.Writer.TryComplete();
        _completion.TrySetResult(result);
    }
}
