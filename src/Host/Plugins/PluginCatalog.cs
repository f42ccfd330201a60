using System.Reflection;
using McMaster.NETCore.Plugins.Loader;
using Serving.Abstractions;

namespace Serving.Host.Plugins;

/// <summary>What happened to one plugin folder during discovery.</summary>
/// <param name="Folder">The plugin's folder.</param>
/// <param name="Name">Backend name, or the folder name when the plugin did not load.</param>
/// <param name="Plugin">The loaded plugin; null when it was skipped.</param>
/// <param name="Probe">Its probe result; null when it was skipped before probing.</param>
/// <param name="Error">Why it was skipped or unusable; null when usable.</param>
internal sealed record PluginEntry(string Folder, string Name, IBackendPlugin? Plugin, ProbeResult? Probe, string? Error)
{
    /// <summary>True when the plugin loaded and has at least one device.</summary>
    public bool Usable => Plugin is not null && Probe is { Usable: true } && Error is null;
}

/// <summary>
/// Finds backend plugins: every sub-folder of the plugins folder holding a <c>&lt;folder&gt;.dll</c> (or exactly
/// one Serving.Backends.*.dll). Each is loaded by McMaster.NETCore.Plugins into a load context of its own, which
/// resolves the plugin's dependencies, managed and native (<c>runtimes/&lt;rid&gt;/native</c>), from its folder through
/// its .deps.json, so two plugins may carry different versions of one library. Its <see cref="IBackendPlugin"/> is
/// instantiated, its contract version checked (<see cref="ContractVersion.Accepts"/>: same major, minor at most the
/// host's) and its Probe called. Nothing a plugin does can stop discovery: every
/// failure becomes a skipped entry with its reason.
/// </summary>
internal static class PluginCatalog
{
    /// <summary>
    /// The assembly every plugin shares with the host: the contract (with what it references). A plugin's private copy
    /// of it would make a different <see cref="IBackendPlugin"/> type. Nothing else needs sharing: the contract exposes
    /// only its own and framework types, and the framework always comes from the host.
    /// </summary>
    private static readonly AssemblyName Contract = typeof(IBackendPlugin).Assembly.GetName();

    /// <summary>The default plugins folder: <c>plugins/</c> beside the host, or <c>$SERVING_PLUGINS</c>.</summary>
    public static string DefaultFolder =>
        Environment.GetEnvironmentVariable("SERVING_PLUGINS") is { Length: > 0 } env
            ? env
            : Path.Combine(AppContext.BaseDirectory, "plugins");

    /// <summary>Discovers every plugin under <paramref name="pluginsFolder"/>. A missing folder gives no entries and an error line.</summary>
    public static IReadOnlyList<PluginEntry> Discover(string pluginsFolder, out string? folderError)
    {
        folderError = null;
        if (!Directory.Exists(pluginsFolder))
        {
            folderError = $"plugins folder not found: {pluginsFolder}";
            return [];
        }
        var entries = new List<PluginEntry>();
        foreach (string dir in Directory.GetDirectories(pluginsFolder).Order(StringComparer.Ordinal))
            entries.Add(LoadOne(dir));
        return entries;
    }

    private static PluginEntry LoadOne(string dir)
    {
        string folderName = Path.GetFileName(dir);
        string? dll = FindEntryAssembly(dir);
        if (dll is null)
            return new(dir, folderName, null, null, $"no plugin assembly in {dir} (expected {folderName}.dll)");
        IBackendPlugin plugin;
        try
        {
            // McMaster's load context from its builder rather than its PluginLoader, which also reads every
            // *.runtimeconfig.json beside the host and the plugin (reflection-based JSON, a scan of /proc for the
            // process's path) to add NuGet-cache probing paths that a plugin carrying its dependencies does not need:
            // 290-390 ms against 90 ms on the first plugin of a CLI run, with the host's fully optimizing JIT.
            // Not unloadable: a device's native handles and worker threads live as long as the process.
            var context = new AssemblyLoadContextBuilder().SetMainAssemblyPath(Path.GetFullPath(dll)).PreferDefaultLoadContextAssembly(Contract).Build();
            Assembly assembly = context.LoadFromAssemblyPath(Path.GetFullPath(dll));
            Type[] types = assembly.GetExportedTypes()
                .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IBackendPlugin).IsAssignableFrom(t))
                .ToArray();
            if (types.Length != 1)
                return new(dir, folderName, null, null,
                    types.Length == 0
                        ? $"{Path.GetFileName(dll)} has no public IBackendPlugin implementation (built against another contract assembly?)"
                        : $"{Path.GetFileName(dll)} has {types.Length} IBackendPlugin implementations; expected one");
            plugin = (IBackendPlugin)Activator.CreateInstance(types[0])!;
        }
        catch (Exception e)
        {
            return new(dir, folderName, null, null, $"failed to load {Path.GetFileName(dll)}: {Unwrap(e).Message}");
        }

        string name;
        ContractVersion version;
        try
        {
            name = plugin.Name;
            version = plugin.ContractVersion;
        }
        catch (Exception e)
        {
            return new(dir, folderName, null, null, $"plugin in {folderName} threw while describing itself: {Unwrap(e).Message}");
        }
        if (VersionError(version) is { } versionError)
            return new(dir, name, null, null, versionError);
        try
        {
            ProbeResult probe = plugin.Probe();
            return new(dir, name, plugin, probe, probe.Usable ? null : probe.Reason);
        }
        catch (Exception e)
        {
            return new(dir, name, null, null, $"Probe threw {Unwrap(e).GetType().Name}: {Unwrap(e).Message}");
        }
    }

    /// <summary>
    /// Null when the host accepts a plugin built against <paramref name="plugin"/> (same major, minor at most the
    /// host's: <see cref="ContractVersion.Accepts"/>); otherwise a sentence with both versions and what to do.
    /// </summary>
    internal static string? VersionError(ContractVersion plugin)
    {
        ContractVersion host = ContractVersion.Current;
        if (host.Accepts(plugin)) return null;
        string advice = plugin.Major != host.Major
            ? plugin.Major < host.Major
                ? $"rebuild the plugin against contract {host.Major}.x (docs/backends.md, \"Versioning\")"
                : $"the plugin needs a newer host (contract {plugin.Major}.x); update Serving or use a plugin built for {host.Major}.x"
            : $"the plugin uses contract {plugin} features this host lacks; update Serving, or rebuild the plugin against {host}";
        string accepted = host.Minor == 0 ? $"{host}" : $"{host.Major}.0 to {host}";
        return $"contract version mismatch: plugin implements {plugin}, host expects {host} (loads plugins built against {accepted}); {advice}";
    }

    private static string? FindEntryAssembly(string dir)
    {
        string named = Path.Combine(dir, Path.GetFileName(dir) + ".dll");
        if (File.Exists(named)) return named;
        string[] candidates = Directory.GetFiles(dir, "Serving.Backends.*.dll");
        return candidates.Length == 1 ? candidates[0] : null;
    }

    private static Exception Unwrap(Exception e) => e is TargetInvocationException { InnerException: { } inner } ? inner : e;
}
