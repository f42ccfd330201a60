using Serving.Abstractions;

namespace Serving.Backends.Cpu;

/// <summary>The CPU backend: always usable, one device covering every core.</summary>
public sealed class CpuPlugin : IBackendPlugin
{
    /// <inheritdoc/>
    public string Name => "cpu";

    /// <inheritdoc/>
    public int ContractVersion => Abstractions.ContractVersion.Current;

    /// <inheritdoc/>
    public ProbeResult Probe() => ProbeResult.Unusable("skeleton: kernels not written yet");

    /// <inheritdoc/>
    public IAccelerator CreateDevice(int index, DeviceOptions options) => throw new NotSupportedException("skeleton");
}
