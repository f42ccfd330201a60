using System.CommandLine;
using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Speculative;

namespace Serving.Host.Commands;

/// <summary>
/// <c>--draft</c>, <c>--draft-k</c>, <c>--draft-fixed</c>: speculative decoding for <c>generate</c> and <c>bench decode</c>
/// (docs/speculative.md). The draft is a model file sharing the target's vocabulary, or <c>self</c> (the target's first
/// half of layers, read from the same mapped file: no second file, no second copy of the weights on a device that reads
/// the mapping), <c>self:N</c> (its first N layers), <c>self:q4_0</c> (a lower-precision copy of the target, re-encoded
/// at load) or <c>self:N:q4_0</c>.
/// </summary>
internal sealed class DraftOptions
{
    public Option<string?> Draft { get; } = new("--draft")
    {
        Description = "Speculative decoding: a draft model file sharing the target's vocabulary, or 'self' (the target's first half of layers) or 'self:N' (its first N layers), 'self:q4_0' (a q4_0 copy of it made at load), 'self:N:q4_0'",
    };

    public Option<int> MaxTokens { get; } = new("--draft-k")
    {
        Description = "Most draft tokens per step (k); adapted per sequence from the acceptance rate unless --draft-fixed",
        DefaultValueFactory = _ => 4,
    };

    public Option<bool> Fixed { get; } = new("--draft-fixed") { Description = "Always propose --draft-k tokens (no adaptation)" };

    public IEnumerable<Option> All => [Draft, MaxTokens, Fixed];

    /// <summary>
    /// Loads the draft <c>--draft</c> names on <paramref name="device"/> beside <paramref name="target"/> (loaded from
    /// <paramref name="targetPath"/> with <paramref name="targetOptions"/>), or null without <c>--draft</c>. Throws
    /// <see cref="ArgumentException"/> for a bad value or a draft whose vocabulary differs from the target's.
    /// </summary>
    public static LoadedModel? Load(string? spec, string targetPath, LoadedModel target, IAccelerator device, ModelOptions targetOptions)
    {
        if (string.IsNullOrEmpty(spec)) return null;
        var options = targetOptions with { ContextLength = target.Model.ContextLength };
        string path = spec;
        if (spec == "self" || spec.StartsWith("self:", StringComparison.Ordinal))
        {
            // self: the first half of the layers; self:N: the first N; self:TYPE: all layers re-encoded to TYPE
            // (a lower-precision copy, e.g. self:q4_0); self:N:TYPE: both.
            int layers = target.Model.Config.Layers, keep = 0;
            DataType? type = null;
            foreach (string part in spec.Split(':').Skip(1))
            {
                if (int.TryParse(part, out int n))
                    keep = n >= 1 && n < layers ? n : throw new ArgumentException($"--draft {spec}: N needs 1 ≤ N < {layers} (the target's layers)");
                else if (Engine.Quantization.WeightFormats.TryParse(part, out var format)) type = format.Type;
                else throw new ArgumentException($"--draft {spec}: '{part}' is neither a layer count nor a weight type ({Engine.Quantization.WeightFormats.Names})");
            }
            if (keep == 0 && type is null) keep = Math.Max(1, layers / 2);
            options = options with { LayerLimit = keep, WeightType = type };
            path = targetPath;
        }
        else if (!File.Exists(spec)) throw new ArgumentException($"--draft {spec}: no such file (give a model file, 'self' or 'self:N')");
        var draft = LoadedModel.Open(path, device, options);
        try
        {
            if (draft.Tokenizer.VocabSize != target.Tokenizer.VocabSize || draft.Model.VocabSize != target.Model.VocabSize)
                throw new ArgumentException($"--draft {spec}: its vocabulary ({draft.Model.VocabSize} tokens) is not the target's ({target.Model.VocabSize}); a draft must share it");
            for (int id = 0; id < target.Tokenizer.VocabSize; id++)
                if (draft.Tokenizer.GetTokenText(id) != target.Tokenizer.GetTokenText(id))
                    throw new ArgumentException($"--draft {spec}: token {id} is '{draft.Tokenizer.GetTokenText(id)}' in the draft, '{target.Tokenizer.GetTokenText(id)}' in the target; a draft must share the target's vocabulary");
            Console.Error.WriteLine($"draft: {draft.Name} ({draft.Model.Config.Layers} of {LlamaConfig.FromGguf(draft.File).Layers} layers, {Cli.Units.Bytes(draft.Model.WeightBytes)} weights: " +
                                    $"{CostRatio(draft, target):P0} of the target's per step)");
            return draft;
        }
        catch
        {
            draft.Dispose();
            throw;
        }
    }

    /// <summary>The scheduler's speculative options for <paramref name="draft"/> beside <paramref name="target"/>.</summary>
    public SpeculativeOptions Options(ParseResult parse, LoadedModel draft, LoadedModel target)
    {
        int k = parse.GetValue(MaxTokens);
        if (k is < 1 or > 32) throw new ArgumentException($"--draft-k {k} out of range [1, 32]");
        return new SpeculativeOptions
        {
            Draft = draft.Model,
            MaxDraftTokens = k,
            Adaptive = !parse.GetValue(Fixed),
            DraftCostRatio = CostRatio(draft, target),
        };
    }

    /// <summary>Decode is memory bound: a step costs about the weight bytes it reads.</summary>
    internal static double CostRatio(LoadedModel draft, LoadedModel target) =>
        Math.Clamp((double)draft.Model.WeightBytes / Math.Max(1, target.Model.WeightBytes), 0.01, 1.0);
}
