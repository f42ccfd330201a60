using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

public sealed partial class OpChecks
{
    /// <summary>
    /// Gather output[r, :] = source[rows[r], :] for source [T, D] × R gathered rows of the coverage: the first and last
    /// source rows, repeats and any order; exact (a row copy), guards intact.
    /// </summary>
    public CaseLog Gather(Coverage coverage)
    {
        var log = new CaseLog();
        using var stream = device.CreateStream();
        foreach (int d in Pick(RowWidths, coverage, 7, 1024))
            foreach (int t in Pick([1, 5, 33], coverage, 5))
                foreach (int r in Pick([1, 3, 7], coverage, 3))
                foreach (var variant in VariantRuns(OpKind.Gather, DataType.F32))
                {
                    if (!Applies(variant, r, d)) continue;
                    string context = Context(OpKind.Gather, DataType.F32, variant, $"T={t} D={d} R={r}");
                    Run(log, context, () =>
                    {
                        var data = new TestData(TestData.Seed("gather", t, d, r));
                        float[] source = data.Normal(t * d);      // [T, D]
                        int[] rows = data.Ints(r, 0, t);          // [R]
                        rows[0] = t - 1;
                        if (r > 1) rows[^1] = 0;
                        if (r > 2) rows[1] = rows[0];
                        double[] expected = Reference.Gather(TestData.Widen(source), d, rows);
                        using var scratch = new DeviceScratch(device);
                        var y = scratch.Output(DataType.F32, r, d);
                        stream.Gather(scratch.Input(source, t, d), scratch.Input(rows, 1, r), y, variant);
                        stream.Synchronize();
                        return CaseLog.Compare(context, expected, scratch.ReadF32(y), d, 0) ?? CaseLog.Guards(context, scratch.CheckGuards());
                    });
                }
        return log;
    }
}
