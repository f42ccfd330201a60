using System.Collections.Concurrent;

namespace Serving.Backends.Vulkan.Kernels;

/// <summary>
/// The SPIR-V compiled from Shaders/*.comp by scripts/build-shaders.sh, committed and embedded in this assembly as
/// "&lt;name&gt;.spv". Loaded once per name.
/// </summary>
internal static class ShaderLibrary
{
    private static readonly ConcurrentDictionary<string, byte[]> Cache = new(StringComparer.Ordinal);

    /// <summary>Names of every embedded shader.</summary>
    public static IEnumerable<string> Names => typeof(ShaderLibrary).Assembly.GetManifestResourceNames()
        .Where(n => n.EndsWith(".spv", StringComparison.Ordinal)).Select(n => n[..^4]);

    /// <summary>The SPIR-V words of <paramref name="name"/>. Throws <see cref="InvalidOperationException"/> when it is not embedded.</summary>
    public static byte[] Get(string name) => Cache.GetOrAdd(name, static n =>
    {
        using Stream? s = typeof(ShaderLibrary).Assembly.GetManifestResourceStream(n + ".spv");
        if (s is null)
            throw new InvalidOperationException($"shader '{n}.spv' is not embedded in the Vulkan backend (run scripts/build-shaders.sh)");
        var bytes = new byte[s.Length];
        s.ReadExactly(bytes);
        if (bytes.Length < 20 || bytes.Length % 4 != 0 || BitConverter.ToUInt32(bytes, 0) != 0x07230203)
            throw new InvalidOperationException($"shader '{n}.spv' is not SPIR-V");
        return bytes;
    });
}
