using Serving.Abstractions;

namespace Serving.Host.Plugins;

/// <summary>
/// Resolves device ids ("cpu:0") against the discovered plugins and opens devices. The default device is
/// device 0 of the usable backend with the highest probe score.
/// </summary>
internal sealed class DeviceRegistry
{
    private DeviceRegistry(IReadOnlyList<PluginEntry> plugins, string folder, string? folderError)
    {
        Plugins = plugins;
        Folder = folder;
        FolderError = folderError;
    }

    /// <summary>Every plugin folder found, usable or not.</summary>
    public IReadOnlyList<PluginEntry> Plugins { get; }

    /// <summary>The folder searched.</summary>
    public string Folder { get; }

    /// <summary>Why the folder could not be searched, or null.</summary>
    public string? FolderError { get; }

    /// <summary>Discovers plugins in <paramref name="folder"/> (default: <see cref="PluginCatalog.DefaultFolder"/>).</summary>
    public static DeviceRegistry Discover(string? folder = null)
    {
        folder ??= PluginCatalog.DefaultFolder;
        var plugins = PluginCatalog.Discover(folder, out string? error);
        return new DeviceRegistry(plugins, folder, error);
    }

    /// <summary>Every device of every usable plugin.</summary>
    public IEnumerable<(PluginEntry Plugin, DeviceDescriptor Device)> Devices =>
        Plugins.Where(p => p.Usable).SelectMany(p => p.Probe!.Devices.Select(d => (p, d)));

    /// <summary>
    /// Opens <paramref name="deviceId"/> ("backend:index" or just "backend" for index 0), or the best device when
    /// null. Throws <see cref="DeviceNotFoundException"/> with what is available when it cannot.
    /// </summary>
    public IAccelerator Open(string? deviceId, DeviceOptions? options = null)
    {
        options ??= DeviceOptions.Default;
        if (deviceId is null)
        {
            var best = Plugins.Where(p => p.Usable).OrderByDescending(p => p.Probe!.Score).FirstOrDefault()
                       ?? throw new DeviceNotFoundException($"no usable device. {Describe()}");
            return best.Plugin!.CreateDevice(0, options);
        }
        var (entry, _, index) = Find(deviceId);
        return entry.Plugin!.CreateDevice(index, options);
    }

    /// <summary>
    /// The plugin and probe descriptor of <paramref name="deviceId"/> ("backend:index" or "backend"), without opening
    /// it. Throws <see cref="DeviceNotFoundException"/> with what is available when there is no such usable device.
    /// </summary>
    public (PluginEntry Plugin, DeviceDescriptor Device, int Index) Find(string deviceId)
    {
        ArgumentNullException.ThrowIfNull(deviceId);
        string backend = deviceId;
        int index = 0;
        int colon = deviceId.IndexOf(':');
        if (colon >= 0)
        {
            backend = deviceId[..colon];
            if (!int.TryParse(deviceId.AsSpan(colon + 1), out index) || index < 0)
                throw new DeviceNotFoundException($"bad device id '{deviceId}': expected backend:index, e.g. cpu:0");
        }
        var entry = Plugins.FirstOrDefault(p => string.Equals(p.Name, backend, StringComparison.OrdinalIgnoreCase))
                    ?? throw new DeviceNotFoundException($"no backend '{backend}'. {Describe()}");
        if (!entry.Usable)
            throw new DeviceNotFoundException($"backend '{entry.Name}' cannot run here: {entry.Error}");
        if (index >= entry.Probe!.Devices.Count)
            throw new DeviceNotFoundException($"{entry.Name} has {entry.Probe.Devices.Count} device(s); no index {index}");
        return (entry, entry.Probe.Devices[index], index);
    }

    /// <summary>The id of the device <see cref="Open"/> picks without an id: device 0 of the best-scored usable backend.</summary>
    public string? DefaultDeviceId => Plugins.Where(p => p.Usable).OrderByDescending(p => p.Probe!.Score).FirstOrDefault() is { } best
        ? best.Probe!.Devices[0].Id
        : null;

    private string Describe()
    {
        if (FolderError is not null) return FolderError;
        var usable = Devices.Select(d => d.Device.Id).ToList();
        return usable.Count == 0 ? $"no usable backend in {Folder}" : $"available: {string.Join(", ", usable)}";
    }
}

/// <summary>A requested device does not exist or cannot run here.</summary>
internal sealed class DeviceNotFoundException(string message) : Exception(message);
