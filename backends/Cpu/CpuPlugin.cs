using Serving.Abstractions;
using Serving.Backends.Cpu.Interop;
using Serving.Backends.Cpu.Kernels;

namespace Serving.Backends.Cpu;

/// <summary>
/// The CPU backend: always usable, one device "cpu:0" covering every core. Probe only reads /proc (no threads,
/// no allocations); CreateDevice starts the worker pool.
/// </summary>
public sealed class CpuPlugin : IBackendPlugin
{
    /// <inheritdoc/>
    public string Name => "cpu";

    /// <inheritdoc/>
    public ContractVersion ContractVersion => new(ContractVersion.CurrentMajor, ContractVersion.CurrentMinor);

    /// <inheritdoc/>
    public ProbeResult Probe()
    {
        DeviceDescriptor device = Describe();
        return new ProbeResult(true, $"{device.Name}, {Environment.ProcessorCount} threads, {Simd.TierName}", 10, [device]);
    }

    /// <inheritdoc/>
    /// <remarks>Threads = 0 means one worker per logical processor (Environment.ProcessorCount).</remarks>
    public IAccelerator CreateDevice(int index, DeviceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (index != 0)
            throw new ArgumentOutOfRangeException(nameof(index), $"the cpu backend has one device (0), not {index}");
        if (options.Threads < 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"Threads must be ≥ 0 (0 = one per core), got {options.Threads}");
        int threads = options.Threads == 0 ? Environment.ProcessorCount : options.Threads;
        return new CpuAccelerator(Describe(), threads, options.Reproducible);
    }

    private static DeviceDescriptor Describe()
    {
        string model = CpuInfo.ModelName();
        int cores = Environment.ProcessorCount;
        return new DeviceDescriptor(
            Backend: "cpu",
            Index: 0,
            Name: model,
            Vendor: CpuInfo.Vendor(),
            DriverVersion: CpuInfo.RuntimeVersion(),
            Fingerprint: $"{model}|{cores} cpus|{CpuInfo.IsaFlags()}",
            Kind: DeviceKind.Cpu,
            TotalMemoryBytes: CpuInfo.TotalMemoryBytes());
    }
}
