using ILGPU.Runtime;
using Serving.Abstractions;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>Copy: the destination's bytes = the source's, bit for bit, as a device memcpy on the stream (any offsets and
/// lengths; nothing passes through float registers, so NaN payloads survive).</summary>
internal static class Copy
{
    /// <summary>Records Copy.</summary>
    public static void Record(CudaStream s, in TensorView source, in TensorView destination)
        => s.Bytes(source).CopyTo(s.Handle, s.Bytes(destination));
}
