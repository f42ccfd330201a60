using Serving.Abstractions;

namespace Serving.Backends.TestThrowingProbe;

/// <summary>Throws from Probe, as a buggy vendor plugin might; the host must skip it with the reason and go on.</summary>
public sealed class ThrowingProbePlugin : IBackendPlugin
{
    public string Name => "throwingprobe";
    public ContractVersion ContractVersion => new(Abstractions.ContractVersion.CurrentMajor, Abstractions.ContractVersion.CurrentMinor);
    public ProbeResult Probe() => throw new DllNotFoundException("libvendor.so.3 not found (test plugin)");
    public IAccelerator CreateDevice(int index, DeviceOptions options) => throw new InvalidOperationException("must not be opened");
}
