using Serving.Abstractions;

namespace Serving.Backends.Cpu;

/// <summary>A CPU device fault: memory that cannot be allocated, or a kernel that failed after validation.</summary>
internal sealed class CpuException : AcceleratorException
{
    /// <summary>errno ENOMEM: the native code for allocation failures.</summary>
    public const long OutOfMemory = 12;

    /// <summary>Creates the exception; <paramref name="nativeCode"/> is an errno value or 0.</summary>
    public CpuException(string device, string operation, long nativeCode, string message, Exception? inner = null)
        : base(device, operation, nativeCode, message, inner)
    {
    }
}
