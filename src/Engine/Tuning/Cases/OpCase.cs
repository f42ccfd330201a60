using Serving.Abstractions;

namespace Serving.Engine.Tuning.Cases;

/// <summary>What validating one variant found.</summary>
/// <param name="Passed">True when the variant computes the op within its tolerance on every checked batch.</param>
/// <param name="Error">Largest normalized error seen against the host reference.</param>
/// <param name="Limit">The tolerance it was held to.</param>
/// <param name="BitIdenticalToDefault">True when its output equals the default variant's bit for bit on every checked batch
/// (what lets the tuner switch variants between steps of a reproducible stream); null when not compared.</param>
/// <param name="Reason">Why it failed (empty when it passed).</param>
public sealed record Validation(bool Passed, double Error, double Limit, bool? BitIdenticalToDefault, string Reason);

/// <summary>
/// One op at one of the model's real shapes, set up on a device for the tuner: inputs with seeded data, outputs, and
/// for MatMul several copies of the weight so timed calls rotate through more bytes than a last-level cache holds.
/// <see cref="Validate"/> checks a variant against a host reference (float64) before it is ever timed;
/// <see cref="Record"/> records one call for timing. Legend: T = rows of the call (the batch bucket).
/// </summary>
internal abstract class OpCase : IDisposable
{
    protected readonly List<IDisposable> Owned = [];

    protected OpCase(IAccelerator device, int maxRows)
    {
        Device = device;
        MaxRows = maxRows;
    }

    /// <summary>The device the case lives on.</summary>
    public IAccelerator Device { get; }

    /// <summary>Largest T the case's buffers hold.</summary>
    public int MaxRows { get; }

    /// <summary>The op.</summary>
    public abstract OpKind Op { get; }

    /// <summary>The type variants are listed for (the weight type for MatMul, F32 otherwise).</summary>
    public abstract DataType Type { get; }

    /// <summary>N for MatMul; 0 for ops without weights.</summary>
    public abstract int Rows { get; }

    /// <summary>K for MatMul, the row width otherwise (what <see cref="VariantShapes.ColsMultiple"/> applies to).</summary>
    public abstract int Cols { get; }

    /// <summary>Bytes a call with <paramref name="t"/> rows reads and writes at least once (weights, inputs, outputs).</summary>
    public abstract long Bytes(int t);

    /// <summary>Floating-point operations of a call with <paramref name="t"/> rows (2 per multiply-add; 0 when not meaningful).</summary>
    public abstract double Flops(int t);

    /// <summary>"MatMul q4_0 [2048, 8192]", "RmsNorm width 2048".</summary>
    public abstract string Describe();

    /// <summary>Records one call with <paramref name="t"/> rows and <paramref name="variant"/>; <paramref name="rotation"/> picks the input copy.</summary>
    public abstract void Record(IComputeStream stream, KernelVariant variant, int t, int rotation);

    /// <summary>Runs the call at <paramref name="t"/> rows, synchronizes and returns the output as floats.</summary>
    protected abstract float[] RunAndRead(IComputeStream stream, KernelVariant variant, int t);

    /// <summary>The error of <paramref name="output"/> (a T-row call's result) against the host reference, normalized.</summary>
    protected abstract double Error(float[] output, int t);

    /// <summary>The largest accepted normalized error.</summary>
    protected abstract double Limit { get; }

    /// <summary>
    /// Checks <paramref name="variant"/> at two batch sizes it applies to (T = 1 and an odd T that exercises row tails):
    /// its error against the host reference, and — for a batch-invariant variant — whether its output equals
    /// <paramref name="defaultVariant"/>'s bit for bit. A device fault or a refused call counts as a failure.
    /// </summary>
    public Validation Validate(IComputeStream stream, KernelVariant variant, KernelVariant defaultVariant)
    {
        double worst = 0;
        bool? identical = null;
        int checkedRows = 0;
        foreach (int t in CheckRows(variant))
        {
            checkedRows++;
            float[] y;
            try
            {
                y = RunAndRead(stream, variant, t);
            }
            catch (Exception e) when (e is ArgumentException or AcceleratorException or InvalidOperationException or NotSupportedException)
            {
                return new Validation(false, double.PositiveInfinity, Limit, null, $"failed at T = {t}: {e.Message}");
            }
            double error = Error(y, t);
            worst = Math.Max(worst, double.IsNaN(error) ? double.PositiveInfinity : error);
            if (!(error <= Limit))
                return new Validation(false, error, Limit, null, $"wrong result at T = {t}: normalized error {error:G3} > limit {Limit:G3}");
            if (variant.BatchInvariant && variant.Name != defaultVariant.Name)
            {
                float[] reference = RunAndRead(stream, defaultVariant, t);
                identical = (identical ?? true) && HostData.SameBits(y, reference);
            }
        }
        if (checkedRows == 0)
            return new Validation(false, double.NaN, Limit, null, $"applies to no batch up to {MaxRows} ({variant.AppliesTo})");
        return new Validation(true, worst, Limit, variant.Name == defaultVariant.Name ? true : identical, "");
    }

    private IEnumerable<int> CheckRows(KernelVariant variant)
    {
        var rows = new SortedSet<int>();
        foreach (int t in new[] { 1, 5, variant.AppliesTo.MinRows, variant.AppliesTo.MinRows + 3 })
            if (t >= 1 && t <= MaxRows && variant.AppliesTo.Matches(t, Cols) && rows.Count < 2) rows.Add(t);
        return rows;
    }

    public void Dispose()
    {
        for (int i = Owned.Count - 1; i >= 0; i--) Owned[i].Dispose();
        Owned.Clear();
    }
}
