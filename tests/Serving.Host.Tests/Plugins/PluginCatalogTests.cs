using System.Runtime.InteropServices;
using Serving.Abstractions;
using Serving.Host.Plugins;

namespace Serving.Host.Tests.Plugins;

/// <summary>Discovery survives every way a plugin can be broken, and says why it skipped it.</summary>
public sealed class PluginCatalogTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "serving-plugins-" + Guid.NewGuid().ToString("N"));
    private static string TestPlugins => Path.Combine(AppContext.BaseDirectory, "test-plugins");
    private static string RealPlugins => Path.Combine(AppContext.BaseDirectory, "plugins");

    public PluginCatalogTests() => Directory.CreateDirectory(_root);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Copies a built plugin folder, sub-folders (runtimes/&lt;rid&gt;/native) included unless <paramref name="withNative"/> is false.</summary>
    private string Install(string sourceRoot, string name, bool withNative = true)
    {
        string src = Path.Combine(sourceRoot, name);
        Assert.True(Directory.Exists(src), $"test plugin not built: {src}");
        string dst = Path.Combine(_root, name);
        foreach (string f in Directory.GetFiles(src, "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(src, f);
            if (!withNative && relative.StartsWith("runtimes" + Path.DirectorySeparatorChar, StringComparison.Ordinal)) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(dst, relative))!);
            File.Copy(f, Path.Combine(dst, relative));
        }
        return dst;
    }

    [Fact]
    public void MissingFolder_GivesNoEntriesAndAReason()
    {
        var entries = PluginCatalog.Discover(Path.Combine(_root, "nope"), out string? error);
        Assert.Empty(entries);
        Assert.Contains("plugins folder not found", error);
    }

    /// <summary>Installs the test plugin that reports <paramref name="version"/> (from a file beside it).</summary>
    private void InstallVersioned(string version)
    {
        string folder = Install(TestPlugins, "Serving.Backends.TestWrongVersion");
        File.WriteAllText(Path.Combine(folder, "contract-version.txt"), version);
    }

    [Fact]
    public void OlderMajor_IsSkippedWithBothVersionsAndWhatToDo()
    {
        InstallVersioned($"{ContractVersion.CurrentMajor - 1}.0");
        var entry = Assert.Single(PluginCatalog.Discover(_root, out _));
        Assert.False(entry.Usable);
        Assert.Null(entry.Plugin);
        Assert.Contains($"plugin implements {ContractVersion.CurrentMajor - 1}.0", entry.Error);
        Assert.Contains($"host expects {ContractVersion.Current}", entry.Error);
        Assert.Contains("rebuild the plugin", entry.Error);
    }

    [Fact]
    public void NewerMinor_IsSkippedWithBothVersionsAndWhatToDo()
    {
        var newer = new ContractVersion(ContractVersion.CurrentMajor, ContractVersion.CurrentMinor + 1);
        InstallVersioned(newer.ToString());
        var entry = Assert.Single(PluginCatalog.Discover(_root, out _));
        Assert.False(entry.Usable);
        Assert.Null(entry.Plugin);
        Assert.Contains($"plugin implements {newer}", entry.Error);
        Assert.Contains($"host expects {ContractVersion.Current}", entry.Error);
        Assert.Contains("update Serving", entry.Error);
    }

    [Fact]
    public void NewerMajor_IsSkipped()
    {
        InstallVersioned($"{ContractVersion.CurrentMajor + 1}.0");
        var entry = Assert.Single(PluginCatalog.Discover(_root, out _));
        Assert.Null(entry.Plugin);
        Assert.Contains("needs a newer host", entry.Error);
    }

    [Fact]
    public void SameMajor_OlderOrEqualMinor_IsLoadedAndProbed()
    {
        // The host's own minor and the one before it (2.0 plugins keep loading in a 2.1 host).
        foreach (var version in new[] { ContractVersion.Current, new ContractVersion(ContractVersion.CurrentMajor, ContractVersion.CurrentMinor - 1) })
        {
            InstallVersioned(version.ToString());
            var entry = Assert.Single(PluginCatalog.Discover(_root, out _));
            Assert.NotNull(entry.Plugin);
            Assert.Contains($"built against {version} was accepted and probed", entry.Error);
            Directory.Delete(Path.Combine(_root, "Serving.Backends.TestWrongVersion"), recursive: true);
        }
    }

    [Theory]
    [InlineData(2, 3, 2, 0, true)]
    [InlineData(2, 3, 2, 3, true)]
    [InlineData(2, 3, 2, 4, false)]
    [InlineData(2, 3, 1, 9, false)]
    [InlineData(2, 3, 3, 0, false)]
    [InlineData(2, 0, 2, -1, false)]
    public void Accepts_SameMajorAndMinorAtMostTheHosts(int hostMajor, int hostMinor, int pluginMajor, int pluginMinor, bool accepted)
    {
        Assert.Equal(accepted, new ContractVersion(hostMajor, hostMinor).Accepts(new ContractVersion(pluginMajor, pluginMinor)));
    }

    [Fact]
    public void VersionError_IsNullExactlyWhenTheHostAccepts()
    {
        Assert.Null(PluginCatalog.VersionError(ContractVersion.Current));
        Assert.NotNull(PluginCatalog.VersionError(new ContractVersion(ContractVersion.CurrentMajor, ContractVersion.CurrentMinor + 1)));
        Assert.NotNull(PluginCatalog.VersionError(new ContractVersion(1, 0)));
    }

    [Fact]
    public void ThrowingProbe_IsSkippedWithTheExceptionMessage()
    {
        Install(TestPlugins, "Serving.Backends.TestThrowingProbe");
        var entry = Assert.Single(PluginCatalog.Discover(_root, out _));
        Assert.False(entry.Usable);
        Assert.Contains("Probe threw DllNotFoundException", entry.Error);
        Assert.Contains("libvendor.so.3", entry.Error);
    }

    [Fact]
    public void FolderWithoutAssembly_AndCorruptAssembly_AreSkipped()
    {
        Directory.CreateDirectory(Path.Combine(_root, "Empty"));
        Directory.CreateDirectory(Path.Combine(_root, "Corrupt"));
        File.WriteAllBytes(Path.Combine(_root, "Corrupt", "Corrupt.dll"), [0x4d, 0x5a, 1, 2, 3]);
        var entries = PluginCatalog.Discover(_root, out _);
        Assert.Equal(2, entries.Count);
        Assert.All(entries, e => Assert.False(e.Usable));
        Assert.Contains(entries, e => e.Error!.Contains("no plugin assembly"));
        Assert.Contains(entries, e => e.Error!.Contains("failed to load Corrupt.dll"));
    }

    [Fact]
    public void BrokenPlugins_DoNotHideTheCpuBackend()
    {
        Install(TestPlugins, "Serving.Backends.TestWrongVersion");
        Install(TestPlugins, "Serving.Backends.TestThrowingProbe");
        Install(RealPlugins, "Serving.Backends.Cpu");
        var entries = PluginCatalog.Discover(_root, out _);
        Assert.Equal(3, entries.Count);
        var cpu = Assert.Single(entries, e => e.Name == "cpu");
        Assert.True(cpu.Usable, cpu.Error);
        Assert.Equal("cpu:0", cpu.Probe!.Devices[0].Id);
    }

    [Fact]
    public void NativeLibrary_IsLoadedFromThePluginsOwnFolder()
    {
        // The process's own search path (LD_LIBRARY_PATH, the system folders) cannot find the library, so a load can
        // only come from the plugin's folder.
        Assert.False(NativeLibrary.TryLoad("libservingtestnative.so", out _), "the test's native library is on the process's search path");
        string folder = Install(TestPlugins, "Serving.Backends.TestNativeLibrary");
        string shipped = Assert.Single(Directory.GetFiles(folder, "libservingtestnative.so", SearchOption.AllDirectories));
        Assert.Matches(@"/runtimes/[^/]+/native/libservingtestnative\.so$", shipped);

        var entry = Assert.Single(PluginCatalog.Discover(_root, out _));

        Assert.True(entry.Usable, entry.Error);
        // The device's name is the path the dynamic loader loaded the library from (dladdr): the plugin's own copy.
        Assert.Equal(Path.GetFullPath(shipped), Path.GetFullPath(entry.Probe!.Devices[0].Name));
    }

    [Fact]
    public void NativeLibrary_MissingFromThePluginsFolder_IsSkippedWithTheReason()
    {
        Install(TestPlugins, "Serving.Backends.TestNativeLibrary", withNative: false);
        var entry = Assert.Single(PluginCatalog.Discover(_root, out _));
        Assert.False(entry.Usable);
        Assert.Contains("native library servingtestnative not found", entry.Error);
    }

    [Fact]
    public void Registry_UnknownDevice_ListsWhatIsAvailable()
    {
        Install(RealPlugins, "Serving.Backends.Cpu");
        var registry = DeviceRegistry.Discover(_root);
        var e = Assert.Throws<DeviceNotFoundException>(() => registry.Open("vulkan:0"));
        Assert.Contains("no backend 'vulkan'", e.Message);
        Assert.Contains("cpu:0", e.Message);
        Assert.Throws<DeviceNotFoundException>(() => registry.Open("cpu:7"));
        Assert.Throws<DeviceNotFoundException>(() => registry.Open("cpu:x"));
    }
}
