using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Backends.Scalar;

/// <summary>
/// The scalar backend: one managed device that runs every op with plain loops on one thread. Written from the vendor
/// guide (docs/backends.md) alone, as its test; the conformance suite's <c>ScalarConformance</c> runs it.
/// </summary>
public sealed class ScalarPlugin : IBackendPlugin
{
    /// <inheritdoc/>
    public string Name => "scalar";

    /// <inheritdoc/>
    public ContractVersion ContractVersion => new(ContractVersion.CurrentMajor, ContractVersion.CurrentMinor);

    /// <inheritdoc/>
    public ProbeResult Probe()
        // Below the Cpu backend's 10: a test fixture must never become anyone's default device.
        => new(true, "plain scalar loops in managed memory (a test fixture)", 1, [Describe()]);

    /// <inheritdoc/>
    public IAccelerator CreateDevice(int index, DeviceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (index != 0)
            throw new ArgumentOutOfRangeException(nameof(index), $"scalar has one device, index 0; got {index}");
        return new ScalarAccelerator(Describe(), options);
    }

    /// <summary>Device 0's descriptor; the same for the probe and the opened device.</summary>
    internal static DeviceDescriptor Describe()
    {
        long total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return new DeviceDescriptor(
            Backend: "scalar",
            Index: 0,
            Name: "Scalar reference device",
            Vendor: "Serving tests",
            DriverVersion: "1.0",
            Fingerprint: $"scalar-managed-{RuntimeInformation.ProcessArchitecture}".ToLowerInvariant(),
            Kind: DeviceKind.Cpu,
            TotalMemoryBytes: total > 0 ? total : 1L << 30)
        {
            Details = ["managed byte[] buffers", "plain scalar loops on one thread (DeviceOptions.Threads is ignored)"],
        };
    }
}
