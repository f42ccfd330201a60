using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>Copy: the bytes as they are (never through float registers, so NaN payloads survive).</summary>
internal static class Copy
{
    public static void Run(in TensorView source, in TensorView destination)
        => Views.Bytes(source).CopyTo(Views.Bytes(destination));
}
