namespace Serving.Abstractions;

/// <summary>
/// A device fault: out of device memory, a failed launch, a lost device. Carries the device, the op being run
/// and the native error code. Backends throw this rather than ending the process.
/// </summary>
public class AcceleratorException : Exception
{
    /// <summary>Creates the exception.</summary>
    public AcceleratorException(string device, string operation, long nativeCode, string message, Exception? inner = null)
        : base($"{device}: {operation} failed ({nativeCode}): {message}", inner)
    {
        Device = device;
        Operation = operation;
        NativeCode = nativeCode;
    }

    /// <summary>Device id ("cuda:0").</summary>
    public string Device { get; }

    /// <summary>What was being done ("MatMul q4_0", "allocate 2.1 GB").</summary>
    public string Operation { get; }

    /// <summary>The backend's native error code (CUresult, VkResult, errno); 0 when none.</summary>
    public long NativeCode { get; }
}
