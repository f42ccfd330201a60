using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using Serving.Engine.Routing;

namespace Serving.Host.Commands;

/// <summary>
/// serve's tier options: <c>--model [NAME=]FILE</c> (repeatable: several tiers at once), <c>--device [NAME=]ID</c>
/// (repeatable: one for every tier, or per tier), and the auto policy's parameters.
/// </summary>
internal static partial class TierOptions
{
    /// <summary>--model, repeatable.</summary>
    public static Option<string[]> Models() => new("--model", "-m")
    {
        Description = "GGUF model file (default: the built-in tiny synthetic model). Repeat as NAME=FILE to serve several model tiers at once " +
                      "(e.g. --model small=a.gguf --model large=b.gguf); requests pick one by name or 'auto'",
    };

    /// <summary>--draft, repeatable: speculative decoding per tier.</summary>
    public static Option<string[]> Drafts() => new("--draft")
    {
        Description = "Speculative decoding: TIER=DRAFT gives a tier a draft model (another tier's name, a model file sharing the vocabulary, " +
                      "or self / self:N / self:q4_0: the tier's own first layers or a q4_0 copy of it); a one-model server takes --draft DRAFT",
    };

    /// <summary>--device, repeatable.</summary>
    public static Option<string[]> Devices() => new("--device", "-d")
    {
        Description = "Device id (backend:index, e.g. cpu:0) or auto: the device whose tuning profile predicts the best decode tokens/s for the model. " +
                      "NAME=ID sets one tier's (e.g. --device large=vulkan:0); the others keep the unnamed value or auto",
    };

    /// <summary>--auto-probe-tokens.</summary>
    public static Option<int> ProbeTokens() => new("--auto-probe-tokens")
    {
        Description = "auto routing: tokens the cheaper tier generates (held back from the client) before its confidence is judged; 0 = never escalate",
        DefaultValueFactory = _ => new TierPolicyOptions().ProbeTokens,
    };

    /// <summary>--auto-min-logprob.</summary>
    public static Option<double> MinLogProb() => new("--auto-min-logprob")
    {
        Description = "auto routing: escalate when the mean ln p(token) over the probe is below this",
        DefaultValueFactory = _ => new TierPolicyOptions().MinMeanLogProb,
    };

    /// <summary>--auto-max-entropy.</summary>
    public static Option<double> MaxEntropy() => new("--auto-max-entropy")
    {
        Description = "auto routing: escalate when the mean entropy (nats) over the probe is above this",
        DefaultValueFactory = _ => new TierPolicyOptions().MaxMeanEntropy,
    };

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_.-]{0,31}$")]
    private static partial Regex NamePattern();

    /// <summary>
    /// The tiers of <c>--model</c> values: one plain FILE (or none: the default model) is one tier named after its model;
    /// otherwise every value must be NAME=FILE with distinct names other than "auto". Throws <see cref="ArgumentException"/>.
    /// </summary>
    public static List<(string? Name, string? Path)> ParseModels(string[]? values)
    {
        if (values is null || values.Length == 0) return [(null, null)];
        var list = new List<(string? Name, string? Path)>();
        foreach (string v in values)
        {
            int eq = v.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && NamePattern().IsMatch(v[..eq]) && !File.Exists(v)) list.Add((v[..eq], v[(eq + 1)..]));
            else list.Add((null, v));
        }
        if (list.Count == 1) return list;
        foreach (var (name, path) in list)
        {
            if (name is null) throw new ArgumentException($"--model {path}: with several models each needs a name, as NAME=FILE (e.g. small=a.gguf)");
            if (name == "auto") throw new ArgumentException("--model auto=…: 'auto' is the routing policy's name; pick another tier name");
        }
        var dup = list.GroupBy(x => x.Name).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"--model: two tiers are named '{dup.Key}'");
        return list;
    }

    /// <summary>The device of each tier from <c>--device</c> values: NAME=ID for that tier, a plain value for the rest (default auto).</summary>
    /// <summary>
    /// Resolves <c>serve --draft</c> values to a draft spec per tier: <c>TIER=SPEC</c> attaches a draft to a tier, where
    /// SPEC is another tier's name (its file, loaded once more as the draft), a model file, or <c>self</c>/<c>self:N</c>/
    /// <c>self:q4_0</c> (<see cref="DraftOptions"/>); a bare <c>SPEC</c> applies to a one-model server. Throws
    /// <see cref="ArgumentException"/> naming the bad value.
    /// </summary>
    public static Dictionary<string, string> ParseDrafts(string[]? values, IReadOnlyList<(string? Name, string Path)> tiers)
    {
        var drafts = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = tiers.Where(t => t.Name is not null).Select(t => t.Name!).ToList();
        foreach (string v in values ?? [])
        {
            int eq = v.IndexOf('=', StringComparison.Ordinal);
            string tier, spec;
            if (eq < 0 || names.Count == 0)
            {
                if (tiers.Count != 1)
                    throw new ArgumentException($"--draft {v}: with several tiers, name the tier the draft serves (--draft TIER=DRAFT; tiers: {string.Join(", ", names)})");
                (tier, spec) = (tiers[0].Name ?? "", v);
            }
            else
            {
                (tier, spec) = (v[..eq], v[(eq + 1)..]);
                if (!names.Contains(tier)) throw new ArgumentException($"--draft {v}: no tier is named '{tier}' (tiers: {string.Join(", ", names)})");
            }
            if (spec.Length == 0) throw new ArgumentException($"--draft {v}: no draft given");
            if (spec == tier) throw new ArgumentException($"--draft {v}: a tier cannot draft for itself (use self or self:N for an early-exit draft)");
            // Another tier's name means its file: the draft is a second load of it, with its own KV cache, because a
            // scheduler must be its draft's only user (SpeculativeOptions.Draft).
            if (tiers.FirstOrDefault(t => t.Name == spec) is { Path: { } other }) spec = other;
            else if (spec != "self" && !spec.StartsWith("self:", StringComparison.Ordinal) && !File.Exists(spec))
                throw new ArgumentException($"--draft {v}: '{spec}' is neither a tier ({string.Join(", ", names)}), a model file nor self / self:N / self:TYPE");
            if (!drafts.TryAdd(tier, spec)) throw new ArgumentException($"--draft {v}: tier '{tier}' already has a draft");
        }
        return drafts;
    }

    public static Dictionary<string, string> ParseDevices(string[]? values, IReadOnlyCollection<string> tierNames, out string fallback)
    {
        fallback = DeviceTuning.Auto;
        var perTier = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string v in values ?? [])
        {
            int eq = v.IndexOf('=', StringComparison.Ordinal);
            if (eq < 0)
            {
                fallback = v;
                continue;
            }
            string name = v[..eq];
            if (!tierNames.Contains(name))
                throw new ArgumentException($"--device {v}: no tier is named '{name}' (tiers: {string.Join(", ", tierNames)})");
            perTier[name] = v[(eq + 1)..];
        }
        return perTier;
    }

    /// <summary>The time per output token a profile measured at <paramref name="maxBatch"/> sequences (its decode curve), ms; 0 if none.</summary>
    public static double ExpectedTpotMs(Engine.Tuning.TuningProfile? profile, int maxBatch) =>
        profile?.DecodeCurve.Where(p => p.Batch <= maxBatch).OrderBy(p => p.Batch).LastOrDefault()?.Ms ?? 0;

    /// <summary>"12.5" for logs.</summary>
    public static string F(double v) => v.ToString("0.#", CultureInfo.InvariantCulture);
}
