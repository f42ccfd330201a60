namespace Serving.Abstractions;

/// <summary>
/// An ordered queue of ops on one device. Ops are recorded in call order and may run later: GPU backends
/// record a whole forward step and submit it at <see cref="Flush"/>; the CPU backend may run each op at once.
/// Results are visible to the host only after <see cref="Synchronize"/> (or a download, which synchronizes).
/// Argument checks (shapes, types, bounds) happen when an op is recorded and throw
/// <see cref="ArgumentException"/>; device faults throw <see cref="AcceleratorException"/>.
/// Legend: T = rows in the step, D = model dim, K = input dim, N = output dim, H/Hkv = query/kv heads,
/// Dh = head dim, F = FFN dim, V = vocab. Activations are F32. Not thread-safe: one caller at a time.
/// </summary>
public interface IComputeStream : IDisposable
{
    /// <summary>The device this stream runs on.</summary>
    IAccelerator Device { get; }

    /// <summary>output[t, :] = dequant(table[tokenIds[t], :]). table [V, D] any weight type; tokenIds I32 [1, T]; output F32 [T, D].</summary>
    void Embed(TensorView table, TensorView tokenIds, TensorView output);

    /// <summary>y[t, :] = x[t, :] / sqrt(mean(x[t, :]²) + eps) · weight. x, y F32 [T, D] (may alias); weight F32 [1, D].</summary>
    void RmsNorm(TensorView x, TensorView weight, TensorView y, float eps);

    /// <summary>
    /// y[T, N] = x[T, K] · W[N, K]ᵀ. x F32; W F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q5_K or Q6_K (a backend advertises which in its OpSupport); y F32 (must not alias x).
    /// <paramref name="variant"/> picks an implementation from <see cref="IAccelerator.GetVariants"/>; null = default.
    /// </summary>
    void MatMul(TensorView x, TensorView weight, TensorView y, KernelVariant? variant = null);

    /// <summary>Rotates x F32 [T, Heads·HeadDim] in place; positions I32 [1, T].</summary>
    void Rope(TensorView x, TensorView positions, in RopeConfig config);

    /// <summary>
    /// Writes k[t, :] and v[t, :] (F32 [T, Hkv·Dh]) into slot slots[t] (I32 [1, T]) of <paramref name="layer"/>.
    /// </summary>
    void KvWrite(TensorView k, TensorView v, in KvCacheView cache, int layer, TensorView slots);

    /// <summary>
    /// output[t, h·Dh..] = softmax(scale · q[t, h]·K[j]ᵀ) · V[j] over the cached positions j that
    /// <paramref name="batch"/> gives row t, using kv head h / (H / Hkv). q, output F32 [T, H·Dh] (must not alias).
    /// Each row's result depends only on its own inputs, never on the other rows in the step.
    /// </summary>
    void Attention(TensorView q, in KvCacheView cache, int layer, in AttentionBatch batch, TensorView output);

    /// <summary>output = silu(gate) · up, element-wise. All F32 [T, F]; output may alias either input.</summary>
    void SwiGlu(TensorView gate, TensorView up, TensorView output);

    /// <summary>output = a + b, element-wise. All F32, same shape; output may alias either input.</summary>
    void Add(TensorView a, TensorView b, TensorView output);

    /// <summary>Copies source's bytes to destination (same byte length, any type, must not overlap).</summary>
    void Copy(TensorView source, TensorView destination);

    /// <summary>output[t] = index of the largest logits[t, :] (first on ties). logits F32 [T, V]; output I32 [1, T].</summary>
    void Argmax(TensorView logits, TensorView output);

    /// <summary>Submits everything recorded so far; returns without waiting.</summary>
    void Flush();

    /// <summary>Flushes and waits until every recorded op has finished.</summary>
    void Synchronize();
}
