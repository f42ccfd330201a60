namespace Serving.Abstractions;

/// <summary>
/// An ordered queue of ops on one device. Ops are recorded in call order and may run later: GPU backends record a
/// whole forward step into command buffers and submit it at <see cref="Flush"/> (or when a download needs it); the
/// CPU backend runs each op at once. Results are visible to the host only after <see cref="Synchronize"/> or a
/// <see cref="Download"/>. Every backend's stream derives from <see cref="ComputeStream"/>, which checks arguments
/// (shapes, types, bounds, aliasing, devices, variants) identically for all and throws <see cref="ArgumentException"/>
/// when an op is recorded; index values inside I32 views (token ids, slots, positions, block ids, rows) are the
/// caller's to check (docs/backends.md). Device faults throw <see cref="AcceleratorException"/>.
/// Legend: T = rows in the step, D = model dim, K = input dim, N = output dim, H/Hkv = query/kv heads,
/// Dh = head dim, F = FFN dim, V = vocab, R = gathered rows. Activations are F32. Not thread-safe: one caller at a time.
/// <paramref name="variant"/> (every op): an implementation from <see cref="IAccelerator.GetVariants"/>; null = the default.
/// </summary>
public interface IComputeStream : IDisposable
{
    /// <summary>The device this stream runs on.</summary>
    IAccelerator Device { get; }

    /// <summary>True when only batch-invariant variants may run (<see cref="DeviceOptions.Reproducible"/>).</summary>
    bool Reproducible { get; }

    /// <summary>output[t, :] = dequant(table[tokenIds[t], :]). table [V, D] prepared weight; tokenIds I32 [1, T]; output F32 [T, D].</summary>
    void Embed(IDeviceWeight table, TensorView tokenIds, TensorView output, KernelVariant? variant = null);

    /// <summary>y[t, :] = x[t, :] / sqrt(mean(x[t, :]²) + eps) · weight. x, y F32 [T, D] (same view or disjoint); weight F32 [1, D].</summary>
    void RmsNorm(TensorView x, TensorView weight, TensorView y, float eps, KernelVariant? variant = null);

    /// <summary>y[T, N] = x[T, K] · W[N, K]ᵀ. x F32; W a prepared weight of any type the device supports; y F32 (must not overlap x).</summary>
    void MatMul(TensorView x, IDeviceWeight weight, TensorView y, KernelVariant? variant = null);

    /// <summary>Rotates x F32 [T, Heads·HeadDim] in place; positions I32 [1, T].</summary>
    void Rope(TensorView x, TensorView positions, in RopeConfig config, KernelVariant? variant = null);

    /// <summary>Writes k[t, :] and v[t, :] (F32 [T, Hkv·Dh]) into slot slots[t] (I32 [1, T]) of <paramref name="layer"/>, rounded to the cache's type.</summary>
    void KvWrite(TensorView k, TensorView v, IKvCache cache, int layer, TensorView slots, KernelVariant? variant = null);

    /// <summary>
    /// output[t, h·Dh..] = softmax(scale · q[t, h]·K[j]ᵀ) · V[j] over the cached positions j that <paramref name="batch"/>
    /// gives row t, using kv head h / (H / Hkv). q, output F32 [T, H·Dh] (must not overlap).
    /// </summary>
    void Attention(TensorView q, IKvCache cache, int layer, in AttentionBatch batch, TensorView output, KernelVariant? variant = null);

    /// <summary>output = silu(gate) · up, element-wise. All F32 [T, F]; output is the same view as an input or disjoint.</summary>
    void SwiGlu(TensorView gate, TensorView up, TensorView output, KernelVariant? variant = null);

    /// <summary>output = a + b. a, output F32 [T, N]; b F32 [T, N] or [1, N] (one row added to every row, e.g. a bias);
    /// output is the same view as an input or disjoint.</summary>
    void Add(TensorView a, TensorView b, TensorView output, KernelVariant? variant = null);

    /// <summary>Copies source's bytes to destination (same byte length, any types, must not overlap).</summary>
    void Copy(TensorView source, TensorView destination, KernelVariant? variant = null);

    /// <summary>output[t] = index of the largest logits[t, :] (first on ties; NaN never wins). logits F32 [T, V]; output I32 [1, T].</summary>
    void Argmax(TensorView logits, TensorView output, KernelVariant? variant = null);

    /// <summary>output[r, :] = source[rows[r], :]. source F32 [T, D]; rows I32 [1, R]; output F32 [R, D] (must not overlap source or rows).</summary>
    void Gather(TensorView source, TensorView rows, TensorView output, KernelVariant? variant = null);

    /// <summary>Records a copy of host bytes into the buffer, ordered with the stream's ops; does not wait. The bytes
    /// are read before this returns, so the caller may reuse <paramref name="source"/> at once.</summary>
    void Upload(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source);

    /// <summary>Flushes, waits for the stream's recorded ops, then copies bytes from the buffer to the host.</summary>
    void Download(IDeviceBuffer source, long offset, Span<byte> destination);

    /// <summary>Records a device timestamp after the ops recorded so far (Vulkan: a timestamp query; CPU: a clock read).</summary>
    DeviceTimestamp RecordTimestamp();

    /// <summary>Device time between two timestamps of this stream; valid after a <see cref="Synchronize"/> that covers both.</summary>
    TimeSpan Elapsed(DeviceTimestamp start, DeviceTimestamp end);

    /// <summary>Submits everything recorded so far; returns without waiting.</summary>
    void Flush();

    /// <summary>Flushes and waits until every recorded op has finished.</summary>
    void Synchronize();
}
