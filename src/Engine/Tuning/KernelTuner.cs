using Serving.Abstractions;
using Serving.Engine.Tuning.Cases;

namespace Serving.Engine.Tuning;

/// <summary>
/// Step 2 of the tuner (docs/tuner.md): for each op at the model's real shapes, validates every variant the device
/// lists against a float64 host reference, then times the ones that pass at each batch bucket and keeps the fastest
/// per (op, shape, bucket). A variant that fails is reported and never timed or chosen. On a reproducible stream a
/// variant that is not batch-invariant is skipped, and a batch-invariant one whose output differs from the default's
/// in any bit is rejected (switching to it between steps would change tokens). The default is kept unless another
/// variant is more than 2 % faster (less than that is within the noise of a busy machine).
/// </summary>
internal static class KernelTuner
{
    /// <summary>Default's advantage: a variant must beat the default's median by more than this fraction to replace it.</summary>
    public const double DefaultMargin = 0.02;

    /// <summary>Largest activation bytes (x and y) a case allocates; buckets beyond are not timed.</summary>
    private const long MaxActivationBytes = 256L << 20;

    /// <summary>The op shapes the tuner times for <paramref name="shape"/>: every MatMul shape, then the row ops.</summary>
    public static IEnumerable<(OpKind Op, DataType Type, int Rows, int Cols, int PerStep, string Role)> Shapes(ModelShape shape)
    {
        var c = shape.Config;
        foreach (var m in shape.Matrices) yield return (OpKind.MatMul, m.Type, m.Rows, m.Cols, m.PerStep, m.Role);
        yield return (OpKind.RmsNorm, DataType.F32, 0, c.Dim, 2 * c.Layers + 1, "attn_norm, ffn_norm, output_norm");
        yield return (OpKind.SwiGlu, DataType.F32, 0, c.FfnDim, c.Layers, "ffn");
        yield return (OpKind.Add, DataType.F32, 0, c.Dim, 2 * c.Layers, "residual");
        yield return (OpKind.Argmax, DataType.F32, 0, c.VocabSize, 1, "greedy logits");
    }

    /// <summary>Validates, times and chooses for every op shape of <paramref name="shape"/> on <paramref name="stream"/>'s device.</summary>
    public static List<OpTuning> Tune(IComputeStream stream, ModelShape shape, TuneOptions options, ProgressCounter progress, Func<bool> overTime)
    {
        var device = stream.Device;
        var results = new List<OpTuning>();
        int seed = 1;
        foreach (var (op, type, rows, cols, perStep, role) in Shapes(shape))
        {
            seed += 10;
            var variants = device.GetVariants(op, type);
            if (variants.Count == 0) continue;               // the model could not load on this device either
            if (options.Fast && variants.Count < 2) continue; // nothing to choose between
            if (overTime())
            {
                results.Add(new OpTuning(op, type, rows, cols, perStep, role, [], [], [], "time limit reached: not validated or timed (its default runs)"));
                continue;
            }
            int maxRows = MaxRows(options.EffectiveBuckets.Max(), rows, cols);
            using OpCase c = op == OpKind.MatMul
                ? new MatMulCase(device, type, rows, cols, maxRows, options.EffectiveRotationBytes, seed)
                : new RowOpCase(device, op, cols, maxRows, seed);
            results.Add(TuneCase(stream, c, variants, perStep, role, options, progress, overTime));
        }
        return results;
    }

    /// <summary>Largest T whose activations (x [T, K] and y [T, N]) stay within the tuner's activation budget.</summary>
    public static int MaxRows(int wanted, int rows, int cols)
    {
        long perRow = 4L * (rows + cols);
        return (int)Math.Max(1, Math.Min(wanted, MaxActivationBytes / Math.Max(4, perRow)));
    }

    /// <summary>Checks every variant of one case, times the usable ones per bucket, chooses per bucket.</summary>
    public static OpTuning TuneCase(IComputeStream stream, OpCase c, IReadOnlyList<KernelVariant> variants, int perStep, string role,
        TuneOptions options, ProgressCounter progress, Func<bool> overTime)
    {
        var checks = Check(stream, c, variants, progress);
        var usable = variants.Where(v => checks.Single(k => k.Variant == v.Name).Usable).ToList();
        var buckets = options.EffectiveBuckets.Where(t => t <= c.MaxRows).ToList();
        progress.Plan(usable.Sum(v => buckets.Count(t => v.AppliesTo.Matches(t, c.Cols))));
        var timings = new List<VariantTiming>();
        var chosen = new List<KernelChoice>();
        string note = usable.Count == 0 ? "no variant passed validation: the default runs unchecked" : "";
        foreach (int t in buckets)
        {
            if (overTime())
            {
                note = $"time limit reached: not timed from T = {t}";
                break;
            }
            var atT = new List<VariantTiming>();
            foreach (var v in usable.Where(v => v.AppliesTo.Matches(t, c.Cols)))
            {
                progress.Step($"{c.Describe()}  T={t}  {v.Name}");
                try
                {
                    var stats = OpTimer.Time(stream, r => c.Record(stream, v, t, r), options.OpBudget);
                    atT.Add(new VariantTiming(v.Name, t, stats, c.Bytes(t), c.Flops(t)));
                }
                catch (AcceleratorException e)
                {
                    note = $"{v.Name} failed at T = {t}: {e.Message}";
                }
                progress.Done();
            }
            if (Choose(atT, variants[0].Name) is { } first && first != variants[0].Name && atT.Any(x => x.Variant == variants[0].Name) && !overTime())
                Confirm(stream, c, t, atT, usable.Single(v => v.Name == first), usable.Single(v => v.Name == variants[0].Name), options, progress);
            timings.AddRange(atT);
            if (Choose(atT, variants[0].Name) is { } winner)
                chosen.Add(new KernelChoice(c.Op, c.Type, c.Rows, c.Cols, t, winner));
        }
        return new OpTuning(c.Op, c.Type, c.Rows, c.Cols, perStep, role, checks, timings, chosen, note);
    }

    /// <summary>
    /// A variant that beat the default is timed once more, with the default, in the opposite order (winner first), and
    /// each keeps the pass with the lower median: other load on a shared machine only ever adds time, so the quieter pass
    /// is the better estimate, and a burst during one variant's block of calls does not decide the choice alone.
    /// <paramref name="atT"/>'s two entries are replaced by the kept passes.
    /// </summary>
    private static void Confirm(IComputeStream stream, OpCase c, int t, List<VariantTiming> atT, KernelVariant winner, KernelVariant fallback,
        TuneOptions options, ProgressCounter progress)
    {
        if (winner.Name == fallback.Name) return;
        foreach (var v in new[] { winner, fallback })
        {
            progress.Step($"{c.Describe()}  T={t}  {v.Name} (again)");
            try
            {
                var again = OpTimer.Time(stream, r => c.Record(stream, v, t, r), options.OpBudget);
                int i = atT.FindIndex(x => x.Variant == v.Name);
                if (again.MedianUs < atT[i].Time.MedianUs) atT[i] = atT[i] with { Time = again };
            }
            catch (AcceleratorException)
            {
                return; // the first pass stands
            }
        }
    }

    /// <summary>The fastest timing's variant, or the default when it is within <see cref="DefaultMargin"/> of it; null when none.</summary>
    public static string? Choose(IReadOnlyList<VariantTiming> atOneBucket, string defaultName)
    {
        if (atOneBucket.Count == 0) return null;
        var best = atOneBucket.MinBy(x => x.Time.MedianUs)!;
        var byDefault = atOneBucket.FirstOrDefault(x => x.Variant == defaultName);
        return byDefault is not null && byDefault.Time.MedianUs <= best.Time.MedianUs * (1 + DefaultMargin) ? defaultName : best.Variant;
    }

    private static List<VariantCheck> Check(IComputeStream stream, OpCase c, IReadOnlyList<KernelVariant> variants, ProgressCounter progress)
    {
        var def = variants[0];
        var checks = new List<VariantCheck>();
        progress.Plan(variants.Count);
        foreach (var v in variants)
        {
            bool isDefault = v.Name == def.Name;
            VariantCheck Make(bool usable, Validation? val, string status) => new(v.Name, v.Description, isDefault, v.BatchInvariant,
                v.AppliesTo.ToString(), usable, val?.Error ?? double.NaN, val?.Limit ?? double.NaN, val?.BitIdenticalToDefault, status);
            if (stream.Reproducible && !v.BatchInvariant)
            {
                checks.Add(Make(false, null, "skipped: not batch-invariant and the device is reproducible"));
                progress.Done();
                continue;
            }
            progress.Step($"{c.Describe()}  validating {v.Name}");
            Validation val = c.Validate(stream, v, def);
            if (!val.Passed)
                checks.Add(Make(false, val, $"rejected: {val.Reason}"));
            else if (stream.Reproducible && val.BitIdenticalToDefault == false)
                checks.Add(Make(false, val, "rejected: batch-invariant but not bit-identical to the default (switching would change tokens on a reproducible device)"));
            else
                checks.Add(Make(true, val, "ok"));
            progress.Done();
        }
        return checks;
    }
}
