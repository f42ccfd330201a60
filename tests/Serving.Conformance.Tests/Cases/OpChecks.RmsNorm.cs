using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

public sealed partial class OpChecks
{
    /// <summary>Row widths of the element-wise and per-row ops: 1, odd, just under/at/over powers of two, a model dim.</summary>
    public static readonly int[] RowWidths = [1, 7, 31, 64, 257, 1024];

    /// <summary>
    /// RmsNorm for T × D of the coverage, rows spanning six orders of magnitude, two eps values, plus the in-place
    /// form (y aliases x) for every D.
    /// </summary>
    public CaseLog RmsNorm(Coverage coverage)
    {
        var log = new CaseLog();
        double limit = Tolerances.For(OpKind.RmsNorm, DataType.F32);
        using var stream = device.CreateStream();
        foreach (int d in Pick(RowWidths, coverage, 7, 64, 1024))
            foreach (int t in Pick(Rows, coverage, 1, 3, 16))
                foreach (bool inPlace in t == 3 ? new[] { false, true } : [false])
                foreach (var variant in VariantRuns(OpKind.RmsNorm, DataType.F32))
                {
                    if (!Applies(variant, t, d)) continue;
                    float eps = t % 2 == 0 ? 1e-6f : 1e-5f;
                    string context = Context(OpKind.RmsNorm, DataType.F32, variant, $"T={t} D={d} eps={eps}{(inPlace ? " in-place" : "")}");
                    Run(log, context, () =>
                    {
                        var data = new TestData(TestData.Seed("rmsnorm", t, d));
                        float[] x = data.Normal(t * d);             // [T, D]
                        for (int i = 0; i < x.Length; i++) x[i] *= MathF.Pow(10, i / d % 3 * 3 - 3); // rows ×1e-3, ×1, ×1e3
                        float[] w = data.Normal(d, 0.2);            // [1, D]
                        for (int i = 0; i < d; i++) w[i] += 1;
                        double[] expected = Reference.RmsNorm(TestData.Widen(x), t, d, TestData.Widen(w), eps);
                        using var scratch = new DeviceScratch(device);
                        var xv = inPlace ? scratch.Output(x, t, d) : scratch.Input(x, t, d);
                        var y = inPlace ? xv : scratch.Output(DataType.F32, t, d);
                        stream.RmsNorm(xv, scratch.Input(w, 1, d), y, eps, variant);
                        stream.Synchronize();
                        return CaseLog.Compare(context, expected, scratch.ReadF32(y), d, limit)
                               ?? CaseLog.Guards(context, scratch.CheckGuards());
                    });
                }
        return log;
    }
}
