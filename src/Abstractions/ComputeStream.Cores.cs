namespace Serving.Abstractions;

/// <summary>The backend's side of <see cref="ComputeStream"/>: one core method per op, called after the front end's checks.</summary>
public abstract partial class ComputeStream
{
    /// <summary>Records Embed. T ≥ 1; views, weight and variant checked.</summary>
    protected abstract void EmbedCore(IDeviceWeight table, in TensorView tokenIds, in TensorView output, KernelVariant variant);

    /// <summary>Records RmsNorm. T, D ≥ 1.</summary>
    protected abstract void RmsNormCore(in TensorView x, in TensorView weight, in TensorView y, float eps, KernelVariant variant);

    /// <summary>Records MatMul. T ≥ 1 (K may be 0: then y = 0).</summary>
    protected abstract void MatMulCore(in TensorView x, IDeviceWeight weight, in TensorView y, KernelVariant variant);

    /// <summary>Records Rope. T ≥ 1, RotaryDim ≥ 2.</summary>
    protected abstract void RopeCore(in TensorView x, in TensorView positions, in RopeConfig config, KernelVariant variant);

    /// <summary>Records KvWrite. T ≥ 1; layer in range; slot values are the caller's to check.</summary>
    protected abstract void KvWriteCore(in TensorView k, in TensorView v, IKvCache cache, int layer, in TensorView slots, KernelVariant variant);

    /// <summary>Records Attention. T ≥ 1; layer in range; position, sequence and block-id values are the caller's to check.</summary>
    protected abstract void AttentionCore(in TensorView q, IKvCache cache, int layer, in AttentionBatch batch, in TensorView output, KernelVariant variant);

    /// <summary>Records SwiGlu. At least one element.</summary>
    protected abstract void SwiGluCore(in TensorView gate, in TensorView up, in TensorView output, KernelVariant variant);

    /// <summary>Records Add (b has a's rows, or one row to broadcast). At least one element.</summary>
    protected abstract void AddCore(in TensorView a, in TensorView b, in TensorView output, KernelVariant variant);

    /// <summary>Records Copy. At least one byte.</summary>
    protected abstract void CopyCore(in TensorView source, in TensorView destination, KernelVariant variant);

    /// <summary>Records Argmax. T ≥ 1, V ≥ 1.</summary>
    protected abstract void ArgmaxCore(in TensorView logits, in TensorView output, KernelVariant variant);

    /// <summary>Records Gather. R ≥ 1, D ≥ 1; row values are the caller's to check.</summary>
    protected abstract void GatherCore(in TensorView source, in TensorView rows, in TensorView output, KernelVariant variant);

    /// <summary>Records a stream-ordered upload (range checked, at least one byte); must copy <paramref name="source"/> before returning.</summary>
    protected abstract void UploadCore(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source);

    /// <summary>Flushes, waits for this stream's work, copies to the host (range checked).</summary>
    protected abstract void DownloadCore(IDeviceBuffer source, long offset, Span<byte> destination);

    /// <summary>Records a timestamp; returns the stream's index for it.</summary>
    protected abstract int RecordTimestampCore();

    /// <summary>Time between two of this stream's timestamps; throws <see cref="InvalidOperationException"/> when not yet synchronized or unknown.</summary>
    protected abstract TimeSpan ElapsedCore(int start, int end);

    /// <summary>Submits recorded work without waiting.</summary>
    protected abstract void FlushCore();

    /// <summary>Submits recorded work and waits for it.</summary>
    protected abstract void SynchronizeCore();
}
