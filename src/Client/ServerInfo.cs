namespace Serving.Client;

/// <summary>The reply of <c>server.info</c>.</summary>
/// <param name="Name">Server software name.</param>
/// <param name="Version">Server version (major.minor.patch).</param>
/// <param name="ContractVersion">The backend contract version the server implements, "major.minor" (e.g. "2.0").</param>
/// <param name="Model">Id of the loaded model.</param>
/// <param name="Device">Id of the device serving it (e.g. cpu:0).</param>
/// <param name="AuthRequired">Whether non-public methods need <c>auth {token}</c> first.</param>
/// <param name="Methods">The methods the server offers.</param>
public sealed record ServerInfo(string Name, string Version, string ContractVersion, string Model, string Device,
    bool AuthRequired, IReadOnlyList<string> Methods);

/// <summary>The reply of <c>health</c>.</summary>
/// <param name="Status">"ok" (taking requests), "draining" (shutting down), "faulted" (a device step failed) or "stopped".</param>
/// <param name="Ready">Whether the server takes new requests now.</param>
/// <param name="Running">Requests in the running batch now.</param>
/// <param name="Waiting">Requests waiting for admission now.</param>
/// <param name="UptimeSeconds">Seconds since the server started.</param>
/// <param name="Device">Id of the serving device, when the server reports it.</param>
/// <param name="Reason">Why the server is not ready, when it says.</param>
public sealed record HealthStatus(string Status, bool Ready, int Running, int Waiting, double UptimeSeconds, string? Device, string? Reason);

/// <summary>One entry of <c>models.list</c>.</summary>
/// <param name="Id">Model id (pass as <see cref="GenerateOptions.Model"/>).</param>
/// <param name="File">File name of the GGUF file.</param>
/// <param name="Architecture">GGUF architecture, e.g. llama.</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="Dim">Model dimension.</param>
/// <param name="Heads">Query heads.</param>
/// <param name="KvHeads">Key/value heads.</param>
/// <param name="Vocab">Vocabulary size (valid token ids are 0..Vocab−1).</param>
/// <param name="ContextLength">Most tokens (prompt plus generated) per request.</param>
/// <param name="WeightBytes">Bytes of weights on the device.</param>
/// <param name="Device">Id of the device serving it.</param>
/// <param name="Tokenizer">Tokenizer model, e.g. llama or gpt2.</param>
public sealed record ModelInfo(string Id, string File, string Architecture, int Layers, int Dim, int Heads, int KvHeads,
    int Vocab, int ContextLength, long WeightBytes, string Device, string Tokenizer);

/// <summary>
/// One entry of <c>devices.list</c>: a device of a usable backend, or a backend that is unavailable (then only
/// <see cref="Backend"/>, <see cref="Status"/> and <see cref="Reason"/> are set).
/// </summary>
/// <param name="Backend">Backend plugin name, e.g. cpu.</param>
/// <param name="Status">"serving", "ready" or "unavailable".</param>
/// <param name="Id">Device id (backend:index); null for an unavailable backend.</param>
/// <param name="Name">Device name.</param>
/// <param name="Vendor">Device vendor.</param>
/// <param name="Kind">cpu, gpu, igpu or npu.</param>
/// <param name="MemoryBytes">Total device memory in bytes.</param>
/// <param name="Driver">Driver version.</param>
/// <param name="Reason">Why the backend is unavailable.</param>
public sealed record DeviceInfo(string Backend, string Status, string? Id, string? Name, string? Vendor, string? Kind,
    long? MemoryBytes, string? Driver, string? Reason);
