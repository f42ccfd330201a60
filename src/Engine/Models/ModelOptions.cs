using Serving.Abstractions;

namespace Serving.Engine.Models;

/// <summary>How a model is placed on a device.</summary>
public sealed record ModelOptions
{
    /// <summary>Most tokens in one forward step (the prefill chunk budget). Default 256.</summary>
    public int MaxBatchTokens { get; init; } = 256;

    /// <summary>Most sequences in one forward step. Default 32.</summary>
    public int MaxBatchSequences { get; init; } = 32;

    /// <summary>Context length per sequence; 0 = the model's, capped at 4096 to keep the KV cache small.</summary>
    public int ContextLength { get; init; }

    /// <summary>Token slots in the KV cache over all sequences; 0 = one full context per sequence of <see cref="MaxBatchSequences"/>, at most 4 (a single-sequence run such as <c>generate</c> gets one), capped by a quarter of free device memory.</summary>
    public int KvCacheTokens { get; init; }

    /// <summary>Token slots per KV block. Default 16.</summary>
    public int KvBlockSize { get; init; } = 16;

    /// <summary>
    /// Serve weights straight from the memory-mapped file where the device can (zero copy). False reads them
    /// into device memory (for the CPU: resident process memory, immune to page-cache eviction).
    /// </summary>
    public bool UseMmap { get; init; } = true;

    /// <summary>
    /// Element type of the KV cache: F16 (the default: half the bytes attention reads per token, keys and values
    /// rounded to half precision) or F32. A device that cannot store the chosen type gets the other one
    /// (<see cref="LlamaModel.KvCacheType"/> says which); one that stores neither refuses the model at load.
    /// </summary>
    public DataType KvCacheType { get; init; } = DataType.F16;

    /// <summary>
    /// The kernel variants a tuning profile chose per (op, shape, batch bucket) (docs/tuner.md); null runs every op's
    /// default variant. Bound to the device at load: names the device does not list are ignored.
    /// </summary>
    public Tuning.KernelPlan? Kernels { get; init; }

    /// <summary>
    /// Scan every tensor for NaN and ±Inf before loading (<see cref="TensorCheck"/>; llama.cpp's <c>--check-tensors</c>):
    /// one more pass over the file, and a poisoned file is refused naming the tensor. Default false.
    /// </summary>
    public bool CheckTensors { get; init; }

    /// <summary>
    /// Run only the first this-many transformer blocks, then the output norm and head (0 = all of them). A model
    /// loaded this way is a cheaper approximation of the whole one (early exit): the self-draft of speculative
    /// decoding (docs/speculative.md). Its KV cache holds only these layers. Capped at the file's block count.
    /// </summary>
    public int LayerLimit { get; init; }

    /// <summary>
    /// Re-encode every weight matrix to this type on the host at load (dequantized from the file, then quantized), so
    /// the device holds a lower-precision copy; null (the default) uses the file's types. A lower-precision copy of the
    /// target is the self-draft of speculative decoding that needs no second file (docs/speculative.md). The copy is the
    /// backend's own memory (never read in place), and each row length must be a whole number of the type's blocks.
    /// </summary>
    public DataType? WeightType { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field.</summary>
    public void Validate()
    {
        if (MaxBatchTokens is < 1 or > 65536) throw new ArgumentException($"MaxBatchTokens {MaxBatchTokens} out of range [1, 65536]");
        if (MaxBatchSequences is < 1 or > 4096) throw new ArgumentException($"MaxBatchSequences {MaxBatchSequences} out of range [1, 4096]");
        if (ContextLength is < 0 or > 1 << 20) throw new ArgumentException($"ContextLength {ContextLength} out of range");
        if (KvCacheTokens < 0) throw new ArgumentException($"KvCacheTokens {KvCacheTokens} must be ≥ 0");
        if (KvBlockSize is < 1 or > 1024) throw new ArgumentException($"KvBlockSize {KvBlockSize} out of range [1, 1024]");
        if (LayerLimit < 0) throw new ArgumentException($"LayerLimit {LayerLimit} must be ≥ 0 (0 = all layers)");
        if (KvCacheType is not (DataType.F16 or DataType.F32)) throw new ArgumentException($"KvCacheType {KvCacheType.Name()} must be f16 or f32");
    }
}
