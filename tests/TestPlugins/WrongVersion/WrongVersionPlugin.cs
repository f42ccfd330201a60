using System.Globalization;
using Serving.Abstractions;

namespace Serving.Backends.TestWrongVersion;

/// <summary>
/// Reports the contract version written in <c>contract-version.txt</c> beside its assembly ("1.0", "2.1"; without the
/// file, the next major), so one plugin tests every versioning rule: the host must skip a version it does not accept,
/// saying both versions, and probe one it does (the probe then says so, as the plugin has no devices).
/// </summary>
public sealed class WrongVersionPlugin : IBackendPlugin
{
    public string Name => "wrongversion";

    public ContractVersion ContractVersion
    {
        get
        {
            string file = Path.Combine(Path.GetDirectoryName(typeof(WrongVersionPlugin).Assembly.Location)!, "contract-version.txt");
            if (File.Exists(file) && Abstractions.ContractVersion.TryParse(File.ReadAllText(file).Trim(), out ContractVersion v)) return v;
            return new(Abstractions.ContractVersion.CurrentMajor + 1, 0);
        }
    }

    public ProbeResult Probe() => ProbeResult.Unusable(string.Create(CultureInfo.InvariantCulture, $"test plugin built against {ContractVersion} was accepted and probed"));

    public IAccelerator CreateDevice(int index, DeviceOptions options) => throw new InvalidOperationException("must not be opened");
}
