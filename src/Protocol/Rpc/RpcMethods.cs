namespace Serving.Protocol.Rpc;

/// <summary>
/// The method and notification names of the Serving RPC protocol (docs/rpc.md §3), shared by the server, the host's
/// methods and the .NET client so that a name is spelled once.
/// </summary>
public static class RpcMethods
{
    /// <summary><c>auth {token}</c> → true; public; built into the server.</summary>
    public const string Auth = "auth";

    /// <summary><c>cancel {msgid}</c> → true, or not_found; built into the server.</summary>
    public const string Cancel = "cancel";

    /// <summary><c>server.info {}</c>: software, model, device, methods; public.</summary>
    public const string ServerInfo = "server.info";

    /// <summary><c>health {}</c>: serving state and queue sizes; public.</summary>
    public const string Health = "health";

    /// <summary><c>devices.list {}</c>: every device of every backend found.</summary>
    public const string DevicesList = "devices.list";

    /// <summary><c>models.list {}</c>: the loaded models.</summary>
    public const string ModelsList = "models.list";

    /// <summary><c>tokenize {text, add_bos?, model?}</c> → <c>{tokens}</c>.</summary>
    public const string Tokenize = "tokenize";

    /// <summary><c>detokenize {tokens, model?}</c> → <c>{text}</c>.</summary>
    public const string Detokenize = "detokenize";

    /// <summary><c>generate {…}</c> → the result; with <c>stream: true</c> preceded by <see cref="GenerateToken"/> notifications.</summary>
    public const string Generate = "generate";

    /// <summary><c>metrics {}</c>: the server's counters by name.</summary>
    public const string Metrics = "metrics";

    /// <summary>The notification <c>[2, "generate.token", [{id, text, token}]]</c> the server sends per streamed token.</summary>
    public const string GenerateToken = "generate.token";
}

/// <summary>
/// Argument and result field names of the Serving RPC protocol (docs/rpc.md §3–4), shared by the server, the host's
/// methods and the .NET client. Metric names (<c>metrics</c>) are the server's alone and are not listed.
/// </summary>
public static class RpcFields
{
    // ---- error replies {code, message, data?}

    /// <summary>Error reply: the stable error code (<see cref="RpcErrorCodes"/>).</summary>
    public const string Code = "code";
    /// <summary>Error reply: the human-readable message.</summary>
    public const string Message = "message";
    /// <summary>Error reply: optional structured detail.</summary>
    public const string Data = "data";
    /// <summary>Error data of overloaded: true when retrying later may succeed.</summary>
    public const string Retriable = "retriable";
    /// <summary>Error data of an auth refused during back-off: seconds until the address may try again.</summary>
    public const string RetryAfterSeconds = "retry_after_s";
    /// <summary>Error data of a request refused for the memory budget or a per-request limit: what was asked, what is allowed.</summary>
    public const string Limit = "limit";

    // ---- auth, cancel, generate.token

    /// <summary>auth: the shared secret.</summary>
    public const string Token = "token";
    /// <summary>cancel: the msgid of the request to cancel.</summary>
    public const string MsgId = "msgid";
    /// <summary>generate.token: the msgid of the generate request the token belongs to.</summary>
    public const string Id = "id";

    // ---- generate / tokenize / detokenize arguments

    /// <summary>generate: prompt text.</summary>
    public const string Prompt = "prompt";
    /// <summary>generate, detokenize: token ids (argument); tokenize, generate: token ids (result).</summary>
    public const string Tokens = "tokens";
    /// <summary>generate: most tokens to generate.</summary>
    public const string MaxTokens = "max_tokens";
    /// <summary>generate: sampling temperature.</summary>
    public const string Temperature = "temperature";
    /// <summary>generate: top-k.</summary>
    public const string TopK = "top_k";
    /// <summary>generate: nucleus mass.</summary>
    public const string TopP = "top_p";
    /// <summary>generate: min-p.</summary>
    public const string MinP = "min_p";
    /// <summary>generate: repetition penalty.</summary>
    public const string RepeatPenalty = "repeat_penalty";
    /// <summary>generate: tokens the repetition penalty looks back over.</summary>
    public const string RepeatLastN = "repeat_last_n";
    /// <summary>generate: sampling seed (argument and result).</summary>
    public const string Seed = "seed";
    /// <summary>generate: stop strings (argument); the stop string that matched (result).</summary>
    public const string Stop = "stop";
    /// <summary>generate: send generate.token notifications.</summary>
    public const string Stream = "stream";
    /// <summary>generate, tokenize: prepend BOS.</summary>
    public const string AddBos = "add_bos";
    /// <summary>generate, tokenize, detokenize: the model id to check; server.info, models.list: the loaded model.</summary>
    public const string Model = "model";
    /// <summary>tokenize: the text (argument); detokenize, generate, generate.token: the text (result).</summary>
    public const string Text = "text";

    // ---- generate result

    /// <summary>generate: why generation ended.</summary>
    public const string FinishReason = "finish_reason";
    /// <summary>generate: counts and timings.</summary>
    public const string Usage = "usage";
    /// <summary>usage: prompt length in tokens.</summary>
    public const string PromptTokens = "prompt_tokens";
    /// <summary>usage: generated tokens.</summary>
    public const string CompletionTokens = "completion_tokens";
    /// <summary>usage: prompt tokens served from the prefix cache.</summary>
    public const string CachedPromptTokens = "cached_prompt_tokens";
    /// <summary>usage: submission to first token, ms.</summary>
    public const string TtftMs = "ttft_ms";
    /// <summary>usage: mean time between later tokens, ms.</summary>
    public const string TpotMs = "tpot_ms";
    /// <summary>usage: submission to end, ms.</summary>
    public const string TotalMs = "total_ms";
    /// <summary>usage: submission to admission, ms.</summary>
    public const string QueueMs = "queue_ms";
    /// <summary>usage: times preempted.</summary>
    public const string Preemptions = "preemptions";
    /// <summary>usage: speculative decoding's draft tokens proposed and verified (0 without a draft).</summary>
    public const string DraftTokens = "draft_tokens";
    /// <summary>usage: draft tokens the target accepted.</summary>
    public const string DraftAcceptedTokens = "draft_accepted_tokens";
    /// <summary>usage: accepted ÷ proposed draft tokens (nil when none was proposed).</summary>
    public const string AcceptanceRate = "acceptance_rate";
    /// <summary>usage: energy, J (nil when not measured).</summary>
    public const string Joules = "joules";
    /// <summary>context_exceeded data: the positions the context holds.</summary>
    public const string ContextLength = "context_length";

    // ---- server.info, health, models.list, devices.list

    /// <summary>server.info: software name.</summary>
    public const string Name = "name";
    /// <summary>server.info: software version.</summary>
    public const string Version = "version";
    /// <summary>server.info: backend contract version, a "major.minor" string ("2.0").</summary>
    public const string ContractVersion = "contract_version";
    /// <summary>server.info, health, models.list: device id.</summary>
    public const string Device = "device";
    /// <summary>server.info: whether auth is required.</summary>
    public const string AuthRequired = "auth_required";
    /// <summary>server.info: the methods offered.</summary>
    public const string Methods = "methods";
    /// <summary>health, devices.list: state.</summary>
    public const string Status = "status";
    /// <summary>health: whether new requests are taken.</summary>
    public const string Ready = "ready";
    /// <summary>health: sequences running now.</summary>
    public const string Running = "running";
    /// <summary>health: sequences waiting now.</summary>
    public const string Waiting = "waiting";
    /// <summary>health: seconds since start.</summary>
    public const string UptimeSeconds = "uptime_s";
    /// <summary>health, devices.list: why not ready / unavailable.</summary>
    public const string Reason = "reason";
    /// <summary>models.list: model id.</summary>
    public const string ModelId = "id";
    /// <summary>models.list: GGUF file name.</summary>
    public const string File = "file";
    /// <summary>models.list: architecture.</summary>
    public const string Architecture = "architecture";
    /// <summary>models.list: transformer blocks.</summary>
    public const string Layers = "layers";
    /// <summary>models.list: model dimension.</summary>
    public const string Dim = "dim";
    /// <summary>models.list: query heads.</summary>
    public const string Heads = "heads";
    /// <summary>models.list: key/value heads.</summary>
    public const string KvHeads = "kv_heads";
    /// <summary>models.list: vocabulary size.</summary>
    public const string Vocab = "vocab";
    /// <summary>models.list: bytes of weights.</summary>
    public const string WeightBytes = "weight_bytes";
    /// <summary>models.list: tokenizer model.</summary>
    public const string Tokenizer = "tokenizer";
    /// <summary>devices.list: backend plugin name.</summary>
    public const string Backend = "backend";
    /// <summary>devices.list: device id.</summary>
    public const string DeviceId = "id";
    /// <summary>devices.list: device vendor.</summary>
    public const string Vendor = "vendor";
    /// <summary>devices.list: cpu, gpu, igpu or npu.</summary>
    public const string Kind = "kind";
    /// <summary>devices.list: total device memory, bytes.</summary>
    public const string MemoryBytes = "memory_bytes";
    /// <summary>devices.list: driver version.</summary>
    public const string Driver = "driver";
    /// <summary>generate: the cheapest tier the request accepts (auto routing).</summary>
    public const string MinTier = "min_tier";
    /// <summary>generate: whether a cheaper tier may answer when the chosen one is overloaded.</summary>
    public const string AllowShed = "allow_shed";
    /// <summary>generate result, models.list, health: the tier's name.</summary>
    public const string Tier = "tier";
    /// <summary>generate result: why that tier answered.</summary>
    public const string TierReason = "tier_reason";
    /// <summary>generate result: every tier the request ran on, in order.</summary>
    public const string TiersTried = "tiers_tried";
    /// <summary>generate result: the probed tier's confidence (tokens, mean_logprob, mean_entropy), or nil.</summary>
    public const string Confidence = "confidence";
    /// <summary>confidence: mean ln p(token) over the probe.</summary>
    public const string MeanLogProb = "mean_logprob";
    /// <summary>confidence: mean entropy over the probe, nats.</summary>
    public const string MeanEntropy = "mean_entropy";
    /// <summary>server.info, health, metrics: the tiers (cheapest first).</summary>
    public const string Tiers = "tiers";
    /// <summary>server.info: the model a request without 'model' gets ("auto" with several tiers).</summary>
    public const string DefaultModel = "default_model";
}
