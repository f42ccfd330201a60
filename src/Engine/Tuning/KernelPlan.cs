using Serving.Abstractions;

namespace Serving.Engine.Tuning;

/// <summary>
/// The variants a profile chose per (op, type, shape, batch bucket), by name, ready to hand to a model
/// (<see cref="Models.ModelOptions.Kernels"/>). The model binds it to its device when it loads
/// (<see cref="Bind"/>): names resolve against the device's own variant lists, so a plan from a stale profile can
/// never pass the device a variant it does not have.
/// </summary>
public sealed class KernelPlan
{
    private readonly IReadOnlyList<KernelChoice> _choices;

    /// <summary>A plan of <paramref name="choices"/>.</summary>
    public KernelPlan(IEnumerable<KernelChoice> choices)
    {
        ArgumentNullException.ThrowIfNull(choices);
        _choices = choices.ToList();
    }

    /// <summary>The plan of a profile's choices.</summary>
    public static KernelPlan From(TuningProfile profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        return new KernelPlan(profile.Choices);
    }

    /// <summary>Every choice.</summary>
    public IReadOnlyList<KernelChoice> Choices => _choices;

    /// <summary>Choices whose variant is the op's default on <paramref name="device"/> do nothing; this counts the others.</summary>
    public int NonDefaultCount(IAccelerator device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return _choices.Count(c => device.GetVariants(c.Op, c.Type) is { Count: > 0 } list && list[0].Name != c.Variant);
    }

    /// <summary>Names in the plan that <paramref name="device"/> does not list for their op and type (a stale profile).</summary>
    public IReadOnlyList<string> Unknown(IAccelerator device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return _choices.Where(c => !device.GetVariants(c.Op, c.Type).Any(v => v.Name == c.Variant))
            .Select(c => $"{c.Op} {c.Type.Name()}: {c.Variant}").Distinct().ToList();
    }

    /// <summary>Resolves the plan against <paramref name="device"/>'s variants; on a reproducible stream, variants that are
    /// not batch-invariant are left out. Unknown names are left out (the op's default runs).</summary>
    public KernelSelector Bind(IAccelerator device, bool reproducible)
    {
        ArgumentNullException.ThrowIfNull(device);
        var table = new Dictionary<(OpKind, DataType, int, int), List<(int Batch, KernelVariant Variant)>>();
        foreach (var c in _choices)
        {
            var variant = device.GetVariants(c.Op, c.Type).FirstOrDefault(v => v.Name == c.Variant);
            if (variant is null || (reproducible && !variant.BatchInvariant)) continue;
            var key = (c.Op, c.Type, c.Rows, c.Cols);
            if (!table.TryGetValue(key, out var list)) table[key] = list = [];
            list.Add((c.Batch, variant));
        }
        return new KernelSelector(table.ToDictionary(kv => kv.Key, kv =>
        {
            var sorted = kv.Value.OrderBy(x => x.Batch).ToArray();
            return (sorted.Select(x => x.Batch).ToArray(), sorted.Select(x => x.Variant).ToArray());
        }));
    }
}

/// <summary>A <see cref="KernelPlan"/> bound to one device: the variant to pass for each call, or null for the default.</summary>
public sealed class KernelSelector
{
    private readonly Dictionary<(OpKind, DataType, int, int), (int[] Buckets, KernelVariant[] Variants)> _table;

    internal KernelSelector(Dictionary<(OpKind, DataType, int, int), (int[] Buckets, KernelVariant[] Variants)> table) => _table = table;

    /// <summary>Selects nothing: every op runs its default.</summary>
    public static KernelSelector None { get; } = new([]);

    /// <summary>Number of (op, type, shape) entries.</summary>
    public int Count => _table.Count;

    /// <summary>
    /// The variant for a call of <paramref name="op"/> on <paramref name="type"/> with <paramref name="rows"/> (N, or 0)
    /// and <paramref name="cols"/> (K or width) at <paramref name="t"/> rows: the choice of the largest bucket ≤ T (the
    /// smallest bucket below it), when it applies to the call's shape; else null (the default).
    /// </summary>
    public KernelVariant? For(OpKind op, DataType type, int rows, int cols, int t)
    {
        if (_table.Count == 0 || !_table.TryGetValue((op, type, rows, cols), out var entry)) return null;
        int i = Array.BinarySearch(entry.Buckets, t);
        if (i < 0) i = Math.Max(0, ~i - 1);
        KernelVariant v = entry.Variants[i];
        return v.AppliesTo.Matches(t, cols) ? v : null;
    }
}
