using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

public sealed partial class OpChecks
{
    /// <summary>The ops whose batch invariance <see cref="BatchInvariance"/> checks (MatMul and Attention have their own checks; Copy and KvWrite are exact).</summary>
    public static readonly OpKind[] RowOps = [OpKind.Embed, OpKind.RmsNorm, OpKind.Rope, OpKind.SwiGlu, OpKind.Add, OpKind.Argmax, OpKind.Gather];

    /// <summary>
    /// Batch invariance of a row-wise op for every variant that declares <see cref="KernelVariant.BatchInvariant"/>
    /// (and applies to T = 17 and T = 1): rows 0, 8 and 16 of a T = 17 call must be bit-identical to the same rows
    /// computed alone. Add is checked with b of a's shape and with one broadcast row.
    /// </summary>
    public CaseLog BatchInvariance(OpKind op, DataType type)
    {
        var log = new CaseLog();
        const int t = 17;
        using var stream = device.CreateStream();
        foreach (bool broadcast in op == OpKind.Add ? new[] { false, true } : [false])
        foreach (var variant in VariantRuns(op, type))
        {
            int cols = op == OpKind.Rope ? 64 : op == OpKind.Embed ? InputWidths(type, Coverage.Quick)[^1] : 257;
            if (variant is { BatchInvariant: false } || !Applies(variant, t, cols) || !Applies(variant, 1, cols)) continue;
            string context = Context(op, type, variant, $"T={t} cols={cols}{(broadcast ? " b broadcast" : "")}");
            Run(log, context, () =>
            {
                using var scratch = new DeviceScratch(device);
                var data = new TestData(TestData.Seed("invariance", op, type, broadcast));
                Func<int, int, byte[]> run = RowRunner(op, type, broadcast, cols, t, scratch, stream, variant, data);
                byte[] all = run(0, t);
                int rowBytes = all.Length / t;
                foreach (int row in new[] { 0, 8, 16 })
                {
                    string? failure = CaseLog.CompareBytes($"{context}: row {row} alone (T=1) vs in the batch, bits",
                        all.AsSpan(row * rowBytes, rowBytes), run(row, 1));
                    if (failure is not null) return failure;
                }
                return CaseLog.Guards(context, scratch.CheckGuards());
            });
        }
        return log;
    }

    /// <summary>Runs <paramref name="op"/> on rows [start, start + count) of fixed T-row inputs; returns the output's bytes.</summary>
    private static Func<int, int, byte[]> RowRunner(OpKind op, DataType type, bool broadcast, int cols, int t,
        DeviceScratch scratch, IComputeStream stream, KernelVariant? variant, TestData data)
    {
        var a = scratch.Input(data.Normal(t * cols, 3), t, cols);
        var b = scratch.Input(data.Normal(t * cols), t, cols);
        byte[] Finish(TensorView y)
        {
            stream.Synchronize();
            return scratch.Read(y);
        }
        switch (op)
        {
            case OpKind.Embed:
            {
                const int v = 37;
                var table = scratch.Weight(type, v, cols, data.Weights(type, v, cols));
                int[] ids = data.Ints(t, 0, v);
                return (s, c) =>
                {
                    var y = scratch.Output(DataType.F32, c, cols);
                    stream.Embed(table, scratch.Input(ids[s..(s + c)], 1, c), y, variant);
                    return Finish(y);
                };
            }
            case OpKind.RmsNorm:
            {
                var w = scratch.Input(data.Normal(cols), 1, cols);
                return (s, c) =>
                {
                    var y = scratch.Output(DataType.F32, c, cols);
                    stream.RmsNorm(a.SliceRows(s, c), w, y, 1e-5f, variant);
                    return Finish(y);
                };
            }
            case OpKind.Rope:
            {
                float[] x = data.Normal(t * cols);
                int[] positions = data.Ints(t, 0, 3000);
                var invFreq = new float[cols / 4];
                for (int i = 0; i < invFreq.Length; i++) invFreq[i] = (float)Math.Pow(10000, -2.0 * i / (cols / 2));
                var config = new RopeConfig(1, cols, cols / 2, RopeStyle.NeoX, scratch.Input(invFreq, 1, invFreq.Length));
                return (s, c) =>
                {
                    var y = scratch.Output(x[(s * cols)..((s + c) * cols)], c, cols);
                    stream.Rope(y, scratch.Input(positions[s..(s + c)], 1, c), config, variant);
                    return Finish(y);
                };
            }
            case OpKind.SwiGlu:
                return (s, c) =>
                {
                    var y = scratch.Output(DataType.F32, c, cols);
                    stream.SwiGlu(a.SliceRows(s, c), b.SliceRows(s, c), y, variant);
                    return Finish(y);
                };
            case OpKind.Add:
                return (s, c) =>
                {
                    var y = scratch.Output(DataType.F32, c, cols);
                    stream.Add(a.SliceRows(s, c), broadcast ? b.SliceRows(0, 1) : b.SliceRows(s, c), y, variant);
                    return Finish(y);
                };
            case OpKind.Argmax:
                return (s, c) =>
                {
                    var y = scratch.Output(DataType.I32, 1, c);
                    stream.Argmax(a.SliceRows(s, c), y, variant);
                    return Finish(y);
                };
            case OpKind.Gather:
            {
                int[] rows = data.Ints(t, 0, t);
                return (s, c) =>
                {
                    var y = scratch.Output(DataType.F32, c, cols);
                    stream.Gather(a, scratch.Input(rows[s..(s + c)], 1, c), y, variant);
                    return Finish(y);
                };
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "no row runner");
        }
    }
}
