using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

public sealed partial class OpChecks
{
    // Which input the output aliases (the contract allows either for SwiGlu and Add).
    private enum Alias { None, First, Second }

    /// <summary>SwiGlu output = silu(gate)·up for T × F of the coverage; output separate, aliasing gate, aliasing up.</summary>
    public CaseLog SwiGlu(Coverage coverage)
        => Elementwise(OpKind.SwiGlu, coverage, 4, false, (s, a, b, y, v) => s.SwiGlu(a, b, y, v), Reference.SwiGlu);

    /// <summary>Add output = a + b for T × F of the coverage; output separate, aliasing a, aliasing b.</summary>
    public CaseLog Add(Coverage coverage)
        => Elementwise(OpKind.Add, coverage, 1, false, (s, a, b, y, v) => s.Add(a, b, y, v), Reference.Add);

    /// <summary>Add with b one row [1, F] added to every row of a [T, F] (a bias); output separate or aliasing a.</summary>
    public CaseLog AddBroadcast(Coverage coverage)
        => Elementwise(OpKind.Add, coverage, 1, true, (s, a, b, y, v) => s.Add(a, b, y, v), Reference.Add);

    private CaseLog Elementwise(OpKind op, Coverage coverage, double sigma, bool broadcast,
        Action<IComputeStream, TensorView, TensorView, TensorView, KernelVariant?> run, Func<double[], double[], double[]> reference)
    {
        var log = new CaseLog();
        double limit = Tolerances.For(op, DataType.F32);
        using var stream = device.CreateStream();
        foreach (int f in Pick([.. RowWidths, 1000], coverage, 7, 64, 1000))
            foreach (int t in Pick(Rows, coverage, 1, 3, 16))
                foreach (var alias in t == 3 ? (broadcast ? new[] { Alias.None, Alias.First } : [Alias.None, Alias.First, Alias.Second]) : [Alias.None])
                foreach (var variant in VariantRuns(op, DataType.F32))
                {
                    if (!Applies(variant, t, f)) continue;
                    string context = Context(op, DataType.F32, variant, $"T={t} F={f}{(broadcast ? " b=[1, F] broadcast" : "")} output={(alias == Alias.None ? "separate" : alias == Alias.First ? "aliases first input" : "aliases second input")}");
                    Run(log, context, () =>
                    {
                        var data = new TestData(TestData.Seed(op, t, f, broadcast));
                        int bRows = broadcast ? 1 : t;
                        float[] a = data.Normal(t * f, sigma), b = data.Normal(bRows * f);   // [T, F]; sigma 4 reaches silu's saturation
                        double[] bFull = new double[t * f];                                // b repeated over the rows when broadcast
                        for (int i = 0; i < bFull.Length; i++) bFull[i] = b[i % (bRows * f)];
                        double[] expected = reference(TestData.Widen(a), bFull);
                        using var scratch = new DeviceScratch(device);
                        var av = alias == Alias.First ? scratch.Output(a, t, f) : scratch.Input(a, t, f);
                        var bv = alias == Alias.Second ? scratch.Output(b, bRows, f) : scratch.Input(b, bRows, f);
                        var y = alias switch { Alias.First => av, Alias.Second => bv, _ => scratch.Output(DataType.F32, t, f) };
                        run(stream, av, bv, y, variant);
                        stream.Synchronize();
                        return CaseLog.Compare(context, expected, scratch.ReadF32(y), f, limit)
                               ?? CaseLog.Guards(context, scratch.CheckGuards());
                    });
                }
        return log;
    }

    /// <summary>
    /// Copy of random bytes (NaN payloads included, which a copy through float registers could alter) for several
    /// types and byte lengths (4·odd, 2·odd, whole q4_0 blocks, 256 KiB + 12): bit-exact, guards intact.
    /// </summary>
    public CaseLog Copy(Coverage coverage)
    {
        var log = new CaseLog();
        (DataType Type, int Rows, int Cols)[] shapes = coverage == Coverage.Full
            ? [(DataType.F32, 1, 1), (DataType.F32, 1, 7), (DataType.F32, 3, 31), (DataType.F32, 2, 64), (DataType.F32, 1, 257),
               (DataType.F32, 1, 65539), (DataType.F16, 1, 1), (DataType.F16, 3, 129), (DataType.Q4_0, 1, 32), (DataType.Q4_0, 3, 96)]
            : [(DataType.F32, 3, 31), (DataType.F16, 3, 129)];
        using var stream = device.CreateStream();
        foreach (var (type, rows, cols) in shapes)
        foreach (var variant in VariantRuns(OpKind.Copy, DataType.F32))
        {
            if (!Applies(variant, rows, cols)) continue;
            string context = Context(OpKind.Copy, type, variant, $"[{rows}, {cols}] {type.Name()} ({type.RowBytes(cols) * rows} bytes)");
            Run(log, context, () =>
            {
                byte[] bytes = new TestData(TestData.Seed("copy", type, rows, cols)).Bytes((int)(type.RowBytes(cols) * rows));
                using var scratch = new DeviceScratch(device);
                var y = scratch.Output(type, rows, cols);
                stream.Copy(scratch.Input(type, rows, cols, bytes), y, variant);
                stream.Synchronize();
                return CaseLog.CompareBytes(context, bytes, scratch.Read(y)) ?? CaseLog.Guards(context, scratch.CheckGuards());
            });
        }
        return log;
    }

    /// <summary>
    /// Argmax per row of logits [T, V] for T × V of the coverage (V up to a 32000 vocabulary): random rows, a row with
    /// the maximum twice (the first must win), an all-equal row (index 0) and an all-negative row; exact.
    /// </summary>
    public CaseLog Argmax(Coverage coverage)
    {
        var log = new CaseLog();
        using var stream = device.CreateStream();
        foreach (int v in Pick([1, 7, 31, 64, 257, 32000], coverage, 7, 32000))
            foreach (int t in Pick([1, 3, 16], coverage, 3))
            foreach (var variant in VariantRuns(OpKind.Argmax, DataType.F32))
            {
                if (!Applies(variant, t, v)) continue;
                string context = Context(OpKind.Argmax, DataType.F32, variant, $"T={t} V={v}");
                Run(log, context, () =>
                {
                    var data = new TestData(TestData.Seed("argmax", t, v));
                    float[] x = data.Normal(t * v);                          // [T, V]
                    if (t >= 3)
                    {
                        int hi = v - 1, lo = v / 2;                          // row 0: a tie between two positions
                        x[hi] = x[lo] = 10;
                        Array.Fill(x, 0.5f, v, v);                           // row 1: all equal
                        for (int i = 2 * v; i < 3 * v; i++) x[i] = -Math.Abs(x[i]) - 1; // row 2: all negative
                    }
                    int[] expected = Reference.Argmax(TestData.Widen(x), t, v);
                    using var scratch = new DeviceScratch(device);
                    var y = scratch.Output(DataType.I32, 1, t);
                    stream.Argmax(scratch.Input(x, t, v), y, variant);
                    stream.Synchronize();
                    return CaseLog.CompareInts(context, expected, scratch.ReadI32(y)) ?? CaseLog.Guards(context, scratch.CheckGuards());
                });
            }
        return log;
    }
}
