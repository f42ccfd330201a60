using System.CommandLine;
using Serving.Abstractions;
using Serving.Host.Plugins;

namespace Serving.Host.Commands;

/// <summary>Options shared by several commands.</summary>
internal static class CommonOptions
{
    /// <summary>Where backend plugins are looked for.</summary>
    public static readonly Option<string?> Plugins = new("--plugins")
    {
        Description = "Folder of backend plugins (default: plugins/ beside the host, or $SERVING_PLUGINS)",
        Recursive = true,
    };

    /// <summary>Device id such as cpu:0.</summary>
    public static Option<string?> Device() => new("--device", "-d")
    {
        Description = "Device id (backend:index, e.g. cpu:0); default: the best device found",
    };

    /// <summary>CPU worker threads.</summary>
    public static Option<int> Threads() => new("--threads")
    {
        Description = "CPU worker threads (0 = one per core)",
        DefaultValueFactory = _ => 0,
    };

    /// <summary>Read weights into device memory instead of serving them from the mapped file.</summary>
    public static Option<bool> NoMmap() => new("--no-mmap")
    {
        Description = "Read weights into memory instead of mapping the file (immune to page-cache eviction)",
    };

    /// <summary>Scan the weights for NaN and Inf before loading.</summary>
    public static Option<bool> CheckTensors() => new("--check-tensors")
    {
        Description = "Scan every tensor for NaN and Inf before loading (one more pass over the file); a poisoned file is refused naming the tensor",
    };

    /// <summary>Element type of the KV cache.</summary>
    public static Option<string> KvType()
    {
        var option = new Option<string>("--kv-type")
        {
            Description = "KV cache element type: f16 (half the bytes attention reads) or f32",
            DefaultValueFactory = _ => "f16",
        };
        option.AcceptOnlyFromAmong("f16", "f32");
        return option;
    }

    /// <summary>The KV cache type --kv-type names.</summary>
    public static DataType KvCacheType(ParseResult parse, Option<string> kvType) =>
        parse.GetValue(kvType) == "f32" ? DataType.F32 : DataType.F16;

    /// <summary>Discovers plugins honouring --plugins.</summary>
    public static DeviceRegistry Registry(ParseResult parse) => DeviceRegistry.Discover(parse.GetValue(Plugins));
}
