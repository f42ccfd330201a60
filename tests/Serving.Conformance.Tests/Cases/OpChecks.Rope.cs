using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

public sealed partial class OpChecks
{
    // (H, Dh, rotary dims): the smallest head, full rotation, partial rotation (rest passes through), odd pair count.
    private static readonly (int Heads, int HeadDim, int RotaryDim)[] RopeShapes = [(1, 2, 2), (2, 64, 64), (3, 128, 64), (4, 10, 6)];

    /// <summary>Rope in place, Normal and NeoX, for each head shape × T of the coverage, positions 0..~3000.</summary>
    public CaseLog Rope(Coverage coverage)
    {
        var log = new CaseLog();
        double limit = Tolerances.For(OpKind.Rope, DataType.F32);
        using var stream = device.CreateStream();
        foreach (var style in new[] { RopeStyle.Normal, RopeStyle.NeoX })
            foreach (var (heads, headDim, rotaryDim) in RopeShapes)
                foreach (int t in Pick(Rows, coverage, 1, 16))
                foreach (var variant in VariantRuns(OpKind.Rope, DataType.F32))
                {
                    if (!Applies(variant, t, headDim)) continue;
                    string context = Context(OpKind.Rope, DataType.F32, variant, $"{style} T={t} H={heads} Dh={headDim} rot={rotaryDim}");
                    Run(log, context, () =>
                    {
                        var data = new TestData(TestData.Seed("rope", style, heads, headDim, rotaryDim, t));
                        int width = heads * headDim;
                        float[] x = data.Normal(t * width);         // [T, H·Dh]
                        int[] positions = data.Ints(t, 0, 3000);    // [T]
                        positions[0] = 0;                           // angle 0: identity
                        if (t > 1) positions[1] = 2999;
                        var invFreq = new float[rotaryDim / 2];     // θ = 10000, as llama
                        for (int i = 0; i < invFreq.Length; i++) invFreq[i] = (float)Math.Pow(10000, -2.0 * i / rotaryDim);
                        double[] expected = Reference.Rope(TestData.Widen(x), t, heads, headDim, rotaryDim, style, positions, TestData.Widen(invFreq));
                        using var scratch = new DeviceScratch(device);
                        var xv = scratch.Output(x, t, width);
                        var config = new RopeConfig(heads, headDim, rotaryDim, style, scratch.Input(invFreq, 1, invFreq.Length));
                        stream.Rope(xv, scratch.Input(positions, 1, t), config, variant);
                        stream.Synchronize();
                        return CaseLog.Compare(context, expected, scratch.ReadF32(xv), width, limit)
                               ?? CaseLog.Guards(context, scratch.CheckGuards());
                    });
                }
        return log;
    }
}
