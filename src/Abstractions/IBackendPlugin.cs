namespace Serving.Abstractions;

/// <summary>
/// Entry point of a backend assembly. The host finds the one public non-abstract class implementing this
/// interface (with a public parameterless constructor) in each plugin folder.
/// Construction and <see cref="Probe"/> must be cheap and free of side effects: no device contexts, no
/// kernel compilation, no large allocations. Heavy work belongs in <see cref="CreateDevice"/>.
/// </summary>
public interface IBackendPlugin
{
    /// <summary>Short lower-case backend name used in device ids ("cpu", "vulkan", "cuda").</summary>
    string Name { get; }

    /// <summary>The contract this plugin was compiled against: return
    /// <c>new(ContractVersion.CurrentMajor, ContractVersion.CurrentMinor)</c>, consts fixed at build time. The host
    /// loads the plugin when <see cref="Abstractions.ContractVersion.Accepts"/> says so.</summary>
    ContractVersion ContractVersion { get; }

    /// <summary>
    /// Says whether the backend can run here and lists its devices. Never throws for "not available":
    /// returns <see cref="ProbeResult.Unusable"/> with a human reason (e.g. "libcuda.so.1 not found").
    /// </summary>
    ProbeResult Probe();

    /// <summary>
    /// Opens device <paramref name="index"/> (an index into <see cref="ProbeResult.Devices"/>). The caller owns
    /// the returned accelerator and disposes it. Throws <see cref="AcceleratorException"/> on a device fault.
    /// </summary>
    IAccelerator CreateDevice(int index, DeviceOptions options);
}

/// <summary>Options for opening a device.</summary>
/// <param name="Threads">CPU worker threads; 0 = one per core. Ignored by GPU backends.</param>
/// <param name="Reproducible">True (the default): every op result is batch-invariant (a row's result does not depend on
/// the other rows in the step), so only variants with <see cref="KernelVariant.BatchInvariant"/> may run. False lets
/// the tuner pick faster non-invariant variants (split-K, cooperative matrices).</param>
/// <param name="Validation">GPU backends: enable the API's validation layer (Vulkan: VK_LAYER_KHRONOS_validation)
/// and turn every message it reports into an <see cref="AcceleratorException"/>. For tests; slow.</param>
public sealed record DeviceOptions(int Threads = 0, bool Reproducible = true, bool Validation = false)
{
    /// <summary>Defaults for every backend.</summary>
    public static DeviceOptions Default { get; } = new();
}
