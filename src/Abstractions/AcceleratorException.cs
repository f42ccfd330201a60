namespace Serving.Abstractions;

/// <summary>
/// A device fault: out of device memory, a failed launch or submit, a lost device, a validation-layer message.
/// Carries the device, the op being run and the native error code. Backends throw this rather than ending the process.
/// When <see cref="DeviceLost"/> is true the device is unusable from now on: every later call on it throws again, and
/// the host reports the device as failed (it keeps answering health) instead of retrying.
/// </summary>
public class AcceleratorException : Exception
{
    /// <summary>Creates the exception.</summary>
    public AcceleratorException(string device, string operation, long nativeCode, string message, Exception? inner = null, bool deviceLost = false)
        : base($"{device}: {operation} failed ({nativeCode}): {message}", inner)
    {
        Device = device;
        Operation = operation;
        NativeCode = nativeCode;
        DeviceLost = deviceLost;
    }

    /// <summary>Device id ("vulkan:0").</summary>
    public string Device { get; }

    /// <summary>What was being done ("MatMul q4_0", "allocate 2.1 GB").</summary>
    public string Operation { get; }

    /// <summary>The backend's native error code (CUresult, VkResult, errno); 0 when none.</summary>
    public long NativeCode { get; }

    /// <summary>True when the device cannot be used again (VK_ERROR_DEVICE_LOST, a sticky CUDA error).</summary>
    public bool DeviceLost { get; }
}
