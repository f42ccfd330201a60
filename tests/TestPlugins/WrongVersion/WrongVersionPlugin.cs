using Serving.Abstractions;

namespace Serving.Backends.TestWrongVersion;

/// <summary>Claims a contract version the host does not implement; the host must skip it and say both numbers.</summary>
public sealed class WrongVersionPlugin : IBackendPlugin
{
    public string Name => "wrongversion";
    public int ContractVersion => Abstractions.ContractVersion.Current + 41;
    public ProbeResult Probe() => throw new InvalidOperationException("must not be probed: wrong contract version");
    public IAccelerator CreateDevice(int index, DeviceOptions options) => throw new InvalidOperationException("must not be opened");
}
