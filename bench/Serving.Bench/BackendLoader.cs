using McMaster.NETCore.Plugins.Loader;
using Serving.Abstractions;

namespace Serving.Bench;

/// <summary>
/// Opens a backend from <c>plugins/&lt;Assembly&gt;/</c> next to this program (build/Plugins.targets puts them there):
/// one McMaster.NETCore.Plugins load context per plugin, resolving the plugin's own dependencies from its folder and
/// sharing Serving.Abstractions with this process.
/// </summary>
public static class BackendLoader
{
    private static readonly Dictionary<string, IAccelerator> Opened = [];

    /// <summary>Device 0 of backend <paramref name="name"/>, opened once per process; throws with the reason when unavailable.</summary>
    public static IAccelerator Open(string name)
    {
        lock (Opened)
        {
            if (Opened.TryGetValue(name, out var open)) return open;
            string root = Path.Combine(AppContext.BaseDirectory, "plugins");
            var reasons = new List<string>();
            foreach (string folder in Directory.Exists(root) ? Directory.GetDirectories(root) : [])
            {
                string dll = Path.Combine(folder, Path.GetFileName(folder) + ".dll");
                if (!File.Exists(dll)) continue;
                // As the host loads it (src/Host/Plugins/PluginCatalog.cs): McMaster's load context, the contract shared.
                var assembly = new AssemblyLoadContextBuilder().SetMainAssemblyPath(dll)
                    .PreferDefaultLoadContextAssembly(typeof(IBackendPlugin).Assembly.GetName()).Build().LoadFromAssemblyPath(dll);
                var type = assembly.GetExportedTypes().FirstOrDefault(t =>
                    typeof(IBackendPlugin).IsAssignableFrom(t) && !t.IsAbstract && t.GetConstructor(Type.EmptyTypes) is not null);
                if (type is null) continue;
                var plugin = (IBackendPlugin)Activator.CreateInstance(type)!;
                if (plugin.Name != name) continue;
                if (!ContractVersion.Current.Accepts(plugin.ContractVersion))
                    throw new InvalidOperationException($"backend '{name}' implements contract {plugin.ContractVersion}, which this build's {ContractVersion.Current} does not accept");
                var probe = plugin.Probe();
                if (!probe.Usable) throw new InvalidOperationException($"backend '{name}' unusable: {probe.Reason}");
                var device = plugin.CreateDevice(0, DeviceOptions.Default);
                Opened[name] = device;
                return device;
            }
            throw new InvalidOperationException($"backend '{name}' not found in {root}");
        }
    }

}
