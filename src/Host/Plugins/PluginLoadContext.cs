using System.Reflection;
using System.Runtime.Loader;

namespace Serving.Host.Plugins;

/// <summary>
/// One load context per backend plugin: the plugin's own dependencies resolve from its folder (through its
/// .deps.json), while the contract assembly always comes from the host so both sides see the same
/// <c>IAccelerator</c> type.
/// </summary>
internal sealed class PluginLoadContext(string pluginPath) : AssemblyLoadContext(Path.GetFileNameWithoutExtension(pluginPath), isCollectible: false)
{
    private readonly AssemblyDependencyResolver _resolver = new(pluginPath);

    /// <summary>Assemblies shared with the host; a plugin's private copy of them would split the type identity.</summary>
    private static readonly string[] Shared = ["Serving.Abstractions"];

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        if (Shared.Contains(assemblyName.Name, StringComparer.Ordinal))
            return null;
        string? path = _resolver.ResolveAssemblyToPath(assemblyName);
        return path is null ? null : LoadFromAssemblyPath(path);
    }

    protected override nint LoadUnmanagedDll(string unmanagedDllName)
    {
        string? path = _resolver.ResolveUnmanagedDllToPath(unmanagedDllName);
        return path is null ? 0 : LoadUnmanagedDllFromPath(path);
    }
}
