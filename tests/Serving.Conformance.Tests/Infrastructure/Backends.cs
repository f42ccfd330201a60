using System.Collections.Concurrent;
using McMaster.NETCore.Plugins.Loader;
using Serving.Abstractions;

namespace Serving.Conformance.Tests.Infrastructure;

/// <summary>
/// A backend as the suite found it: either an opened device, or the reason it cannot be tested here
/// (plugin folder missing, load failure, contract mismatch, Probe says unusable, CreateDevice threw).
/// </summary>
public sealed class BackendHandle
{
    internal BackendHandle(string name, IBackendPlugin? plugin, IAccelerator? device, string? unavailableReason)
    {
        Name = name;
        Plugin = plugin;
        Device = device;
        UnavailableReason = unavailableReason;
    }

    /// <summary>Backend name ("cpu").</summary>
    public string Name { get; }

    /// <summary>The plugin entry point, when it loaded.</summary>
    public IBackendPlugin? Plugin { get; }

    /// <summary>Device 0 of the backend, opened once per process and shared by all tests; null when unavailable.</summary>
    public IAccelerator? Device { get; }

    /// <summary>Why <see cref="Device"/> is null.</summary>
    public string? UnavailableReason { get; }
}

/// <summary>
/// Finds backends the way the host does, independently of src/Host: every folder <c>plugins/&lt;Assembly&gt;/</c> next
/// to this assembly holds one plugin, loaded with McMaster.NETCore.Plugins into a load context of its own that
/// resolves the plugin's own dependencies (managed and native) from its folder and shares Serving.Abstractions with
/// this process (so the interface types are the same).
/// </summary>
public static class Backends
{
    private static readonly ConcurrentDictionary<string, Lazy<BackendHandle>> Handles = new(StringComparer.Ordinal);
    private static readonly Lazy<IReadOnlyList<(string Folder, IBackendPlugin? Plugin, string? Error)>> Plugins = new(LoadAll);

    /// <summary>The plugins folder this process looks in.</summary>
    public static string PluginDirectory => Path.Combine(AppContext.BaseDirectory, "plugins");

    /// <summary>
    /// The backend named <paramref name="name"/> with device 0 open, or the reason it is unavailable. Opened once per
    /// process; the device is disposed at process exit.
    /// </summary>
    public static BackendHandle Get(string name) => Handles.GetOrAdd(name, n => new Lazy<BackendHandle>(() => Open(n))).Value;

    private static BackendHandle Open(string name)
    {
        var errors = new List<string>();
        foreach (var (folder, plugin, error) in Plugins.Value)
        {
            if (plugin is null)
            {
                errors.Add($"{Path.GetFileName(folder)}: {error}");
                continue;
            }
            string pluginName;
            try { pluginName = plugin.Name; }
            catch (Exception e) { errors.Add($"{Path.GetFileName(folder)}: Name threw {e.GetType().Name}: {e.Message}"); continue; }
            if (pluginName != name) continue;

            if (!ContractVersion.Current.Accepts(plugin.ContractVersion))
                return new(name, plugin, null, $"backend '{name}' implements contract version {plugin.ContractVersion}, which this suite's {ContractVersion.Current} does not accept (same major, minor at most ours)");
            ProbeResult probe;
            try { probe = plugin.Probe(); }
            catch (Exception e) { return new(name, plugin, null, $"backend '{name}': Probe threw {e.GetType().Name}: {e.Message}"); }
            if (!probe.Usable || probe.Devices.Count == 0)
                return new(name, plugin, null, $"backend '{name}' unusable here: {probe.Reason}");
            try
            {
                var device = plugin.CreateDevice(0, OptionsFor(name, DeviceOptions.Default));
                AppDomain.CurrentDomain.ProcessExit += (_, _) => device.Dispose();
                return new(name, plugin, device, null);
            }
            catch (Exception e)
            {
                return new(name, plugin, null, $"backend '{name}': CreateDevice(0) threw {e.GetType().Name}: {e.Message}");
            }
        }
        string more = errors.Count > 0 ? " (load errors: " + string.Join("; ", errors) + ")" : "";
        return new(name, null, null, $"backend '{name}' not found in {PluginDirectory}{more}");
    }

    /// <summary>
    /// Opens a second, independent instance of device 0 of <paramref name="name"/> with <paramref name="options"/> (for
    /// foreign-device checks and non-default options); null when the backend is unavailable. The caller disposes it.
    /// </summary>
    public static IAccelerator? OpenAnother(string name, DeviceOptions options)
    {
        var handle = Get(name);
        return handle.Device is null ? null : handle.Plugin!.CreateDevice(0, OptionsFor(name, options));
    }

    /// <summary>
    /// The options the suite opens <paramref name="name"/> with: GPU backends run with their API's validation layer on
    /// (DeviceOptions.Validation), so any validation message fails the test that caused it.
    /// </summary>
    public static DeviceOptions OptionsFor(string name, DeviceOptions options)
        => name is "vulkan" ? options with { Validation = true } : options;

    private static IReadOnlyList<(string, IBackendPlugin?, string?)> LoadAll()
    {
        var found = new List<(string, IBackendPlugin?, string?)>();
        if (!Directory.Exists(PluginDirectory)) return found;
        foreach (string folder in Directory.GetDirectories(PluginDirectory).Order(StringComparer.Ordinal))
        {
            string dll = Path.Combine(folder, Path.GetFileName(folder) + ".dll");
            if (!File.Exists(dll))
            {
                found.Add((folder, null, $"no {Path.GetFileName(dll)}"));
                continue;
            }
            try
            {
                // As the host loads it (src/Host/Plugins/PluginCatalog.cs): McMaster's load context, the contract shared.
                var assembly = new AssemblyLoadContextBuilder().SetMainAssemblyPath(dll)
                    .PreferDefaultLoadContextAssembly(typeof(IBackendPlugin).Assembly.GetName()).Build().LoadFromAssemblyPath(dll);
                var types = assembly.GetExportedTypes()
                    .Where(t => typeof(IBackendPlugin).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false }
                                && t.GetConstructor(Type.EmptyTypes) is not null)
                    .ToList();
                if (types.Count != 1)
                {
                    found.Add((folder, null, $"expected one public IBackendPlugin type, found {types.Count}"));
                    continue;
                }
                found.Add((folder, (IBackendPlugin)Activator.CreateInstance(types[0])!, null));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                found.Add((folder, null, $"{e.GetType().Name}: {e.Message}"));
            }
        }
        return found;
    }

}
