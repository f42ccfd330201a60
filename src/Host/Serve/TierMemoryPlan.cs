using System.Globalization;
using Serving.Engine.Gguf;
using Serving.Engine.Models;

namespace Serving.Host.Serve;

/// <summary>
/// What several tiers need on their devices, worked out from the files before anything is loaded: each model's weight
/// bytes (as stored) and its KV cache (tokens × bytes per token). Tiers on one device share its free memory: with an
/// automatic KV size (<see cref="ModelOptions.KvCacheTokens"/> 0) each gets 4 contexts, capped by its share of a quarter of
/// what the weights leave free, and never less than one context. When weights plus one context of KV per tier do not
/// fit, <see cref="Plan"/> throws naming every tier's need and the device's free memory.
/// </summary>
internal static class TierMemoryPlan
{
    /// <summary>One tier's need.</summary>
    public sealed record Need(string Name, string DeviceId, long WeightBytes, int ContextLength, long KvBytesPerToken, long KvTokens)
    {
        public long KvBytes => KvTokens * KvBytesPerToken;
    }

    /// <summary>Plans KV sizes for <paramref name="tiers"/> (name, file, device id, options) against each device's free bytes.</summary>
    public static List<Need> Plan(IReadOnlyList<(string Name, string Path, string DeviceId, ModelOptions Options)> tiers, Func<string, long> freeBytes)
    {
        var needs = new List<Need>();
        foreach (var (name, path, deviceId, options) in tiers)
        {
            using var file = GgufFile.Open(path);
            var config = LlamaConfig.FromGguf(file);
            long weights = file.Tensors.Sum(t => t.ByteSize);
            int context = options.ContextLength > 0 ? options.ContextLength : Math.Min(config.ContextLength, 4096);
            needs.Add(new Need(name, deviceId, weights, context, config.KvBytesPerToken(options.KvCacheType), options.KvCacheTokens));
        }
        foreach (var group in needs.GroupBy(n => n.DeviceId))
        {
            long free = freeBytes(group.Key);
            long weights = group.Sum(n => n.WeightBytes);
            long minimum = weights + group.Sum(n => (n.KvTokens > 0 ? n.KvTokens : n.ContextLength) * n.KvBytesPerToken);
            if (minimum > free)
                throw new ModelLoadException("tiers", string.Create(CultureInfo.InvariantCulture,
                    $"do not fit on {group.Key}: {string.Join(", ", group.Select(n => $"{n.Name} needs {Gib(n.WeightBytes)} GiB of weights + {Gib((n.KvTokens > 0 ? n.KvTokens : n.ContextLength) * n.KvBytesPerToken)} GiB of KV cache"))}" +
                    $" = {Gib(minimum)} GiB; the device has {Gib(free)} GiB free (lower --ctx or --kv-tokens, or put a tier on another device with --device NAME=ID)"));
            int automatic = group.Count(n => n.KvTokens == 0);
            long share = automatic == 0 ? 0 : Math.Max(0, free - weights) / 4 / automatic;
            foreach (var n in group.Where(n => n.KvTokens == 0).ToList())
            {
                long tokens = Math.Min(4L * n.ContextLength, Math.Max(n.ContextLength, share / n.KvBytesPerToken));
                needs[needs.IndexOf(n)] = n with { KvTokens = tokens };
            }
        }
        return needs;
    }

    private static string Gib(long bytes) => (bytes / (double)(1L << 30)).ToString("0.00", CultureInfo.InvariantCulture);
}
