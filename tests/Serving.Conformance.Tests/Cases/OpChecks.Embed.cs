using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

public sealed partial class OpChecks
{
    /// <summary>
    /// Embed output[t, :] = dequant(table[ids[t], :]) for one table type: T × D of the coverage, a table of V = 37
    /// rows, ids including the first and last rows and repeats; exact (see <see cref="Tolerances"/>), guards intact.
    /// </summary>
    public CaseLog Embed(DataType type, Coverage coverage)
    {
        var log = new CaseLog();
        double limit = Tolerances.For(OpKind.Embed, type);
        const int v = 37;
        using var stream = device.CreateStream();
        foreach (int t in Pick(Rows, coverage, 1, 16))
            foreach (int d in InputWidths(type, coverage))
            foreach (var variant in VariantRuns(OpKind.Embed, type))
            {
                if (!Applies(variant, t, d)) continue;
                string context = Context(OpKind.Embed, type, variant, $"T={t} V={v} D={d}");
                Run(log, context, () =>
                {
                    var data = new TestData(TestData.Seed("embed", type, t, d));
                    byte[] table = data.Weights(type, v, d);        // [V, D]
                    int[] ids = data.Ints(t, 0, v);                 // [T]
                    ids[0] = v - 1;
                    if (t > 1) ids[^1] = 0;
                    if (t > 2) ids[1] = ids[0];
                    double[] expected = Reference.Embed(Reference.Dequantize(type, table, (long)v * d), d, ids);
                    using var scratch = new DeviceScratch(device);
                    var y = scratch.Output(DataType.F32, t, d);
                    stream.Embed(scratch.Weight(type, v, d, table, persistent: t % 2 == 0), scratch.Input(ids, 1, t), y, variant);
                    stream.Synchronize();
                    return CaseLog.Compare(context, expected, scratch.ReadF32(y), d, limit)
                           ?? CaseLog.Guards(context, scratch.CheckGuards());
                });
            }
        return log;
    }
}
