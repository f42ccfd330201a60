using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

public sealed partial class OpChecks
{
    /// <summary>
    /// MatMul y[T, N] = x[T, K] · W[N, K]ᵀ for one weight type: every T × N × K of the coverage × every variant
    /// (and null, the default), each against the float64 reference within <see cref="Tolerances"/>, guards intact.
    /// </summary>
    public CaseLog MatMul(DataType type, Coverage coverage)
    {
        var log = new CaseLog();
        double limit = Tolerances.For(OpKind.MatMul, type);
        var variants = VariantRuns(OpKind.MatMul, type);
        using var stream = device.CreateStream();
        foreach (int t in Pick(Rows, coverage, 1, 3, 16))
            foreach (int n in Pick(Widths, coverage, 7, 64))
                foreach (int k in InputWidths(type, coverage))
                {
                    var data = new TestData(TestData.Seed("matmul", type, t, n, k));
                    float[] x = data.Normal(t * k);                 // [T, K]
                    byte[] w = data.Weights(type, n, k);            // [N, K], GGUF layout
                    double[] wd = Reference.Dequantize(type, w, (long)n * k);
                    double[] expected = Reference.MatMul(TestData.Widen(x), t, k, wd, n);
                    double power = Tolerances.MatMulPower(x, t, wd, n, k);
                    using var scratch = new DeviceScratch(device);
                    var xv = scratch.Input(x, t, k);
                    var wv = scratch.Weight(type, n, k, w, persistent: (t + n) % 2 == 0);
                    foreach (var variant in variants)
                    {
                        if (!Applies(variant, t, k)) continue;
                        string context = Context(OpKind.MatMul, type, variant, $"T={t} N={n} K={k}");
                        Run(log, context, () =>
                        {
                            var yv = scratch.Output(DataType.F32, t, n);
                            stream.MatMul(xv, wv, yv, variant);
                            stream.Synchronize();
                            return CaseLog.Compare(context, expected, scratch.ReadF32(yv), n, limit, power)
                                   ?? CaseLog.Guards(context, scratch.CheckGuards());
                        });
                    }
                }
        return log;
    }

    /// <summary>
    /// Batch invariance (design: a row's result never depends on the other rows of the step): rows 0, 8 and 16 of a
    /// T = 17 MatMul must be bit-identical to the same rows computed alone at T = 1, for every variant that declares
    /// <see cref="KernelVariant.BatchInvariant"/> and applies to both shapes; and every such variant's T = 17 result
    /// must be bit-identical to the first one's (a tuner may switch variants between steps, so on a reproducible
    /// stream the choice must never change a token).
    /// </summary>
    public CaseLog MatMulBatchInvariance(DataType type)
    {
        var log = new CaseLog();
        const int t = 17, n = 63; // n odd: the column tails of every tile shape
        int k = type.BlockSize() == 256 ? 768 : type.IsQuantized() ? 288 : 257;
        using var stream = device.CreateStream();
        var data = new TestData(TestData.Seed("matmul-invariance", type));
        using var scratch = new DeviceScratch(device);
        var xv = scratch.Input(data.Normal(t * k), t, k);
        var wv = scratch.Weight(type, n, k, data.Weights(type, n, k));
        byte[]? first = null;
        string? firstName = null;
        foreach (var variant in VariantRuns(OpKind.MatMul, type))
        {
            if (variant is { BatchInvariant: false } || !Applies(variant, t, k) || !Applies(variant, 1, k)) continue;
            string context = Context(OpKind.MatMul, type, variant, $"T={t} N={n} K={k}");
            Run(log, context, () =>
            {
                var batch = scratch.Output(DataType.F32, t, n);
                stream.MatMul(xv, wv, batch, variant);
                stream.Synchronize();
                byte[] all = scratch.Read(batch);
                string name = variant?.Name ?? "default";
                if (first is null)
                {
                    first = all;
                    firstName = name;
                }
                else if (CaseLog.CompareBytes($"{context}: T={t} result vs variant {firstName}'s, bits", first, all) is { } differs)
                {
                    return differs;
                }
                foreach (int row in new[] { 0, 8, 16 })
                {
                    var single = scratch.Output(DataType.F32, 1, n);
                    stream.MatMul(xv.SliceRows(row, 1), wv, single, variant);
                    stream.Synchronize();
                    string? failure = CaseLog.CompareBytes($"{context}: row {row} alone (T=1) vs in the batch, bits",
                        all.AsSpan(row * n * 4, n * 4), scratch.Read(single));
                    if (failure is not null) return failure;
                }
                return null;
            });
        }
        return log;
    }

    /// <summary>
    /// An unquantized weight (f32, f16, bf16) holding +∞, −∞ and NaN in three of its rows: with x all positive, those
    /// rows give +∞, −∞ and NaN, and every other row is bit for bit its value from the same weight without them (a row's
    /// result depends only on its own elements). A backend may widen finite-only weights by a cheaper path; this holds
    /// both paths to the same bits and the special values to IEEE arithmetic. Every variant, T = 1 and 5, K with tails.
    /// </summary>
    public CaseLog MatMulWeightSpecials(DataType type)
    {
        var log = new CaseLog();
        const int n = 19, plusRow = 2, minusRow = 9, nanRow = 17;
        var variants = VariantRuns(OpKind.MatMul, type);
        using var stream = device.CreateStream();
        foreach (int t in new[] { 1, 5 })
            foreach (int k in new[] { 64, 275 })
            {
                var data = new TestData(TestData.Seed("matmul-specials", type, t, k));
                float[] x = data.Normal(t * k);
                for (int i = 0; i < x.Length; i++) x[i] = MathF.Abs(x[i]) + 0.25f;
                byte[] finite = data.Weights(type, n, k);
                byte[] special = (byte[])finite.Clone();
                long e = type.RowBytes(1); // bytes per element
                void Put(int row, int col, float value)
                {
                    int at = checked((int)(type.RowBytes(k) * row + e * col));
                    if (type == DataType.F32) BitConverter.TryWriteBytes(special.AsSpan(at, 4), value);
                    else if (type == DataType.F16) BitConverter.TryWriteBytes(special.AsSpan(at, 2), (Half)value);
                    else BitConverter.TryWriteBytes(special.AsSpan(at, 2), (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16));
                }
                Put(plusRow, k / 3, float.PositiveInfinity);
                Put(minusRow, k - 1, float.NegativeInfinity);
                Put(nanRow, 0, float.NaN);
                using var scratch = new DeviceScratch(device);
                var xv = scratch.Input(x, t, k);
                var wFinite = scratch.Weight(type, n, k, finite);
                var wSpecial = scratch.Weight(type, n, k, special, persistent: true);
                foreach (var variant in variants)
                {
                    if (!Applies(variant, t, k)) continue;
                    string context = Context(OpKind.MatMul, type, variant, $"T={t} N={n} K={k}, weight with ±∞ and NaN");
                    Run(log, context, () =>
                    {
                        var y0 = scratch.Output(DataType.F32, t, n);
                        var y1 = scratch.Output(DataType.F32, t, n);
                        stream.MatMul(xv, wFinite, y0, variant);
                        stream.MatMul(xv, wSpecial, y1, variant);
                        stream.Synchronize();
                        float[] a = scratch.ReadF32(y0), b = scratch.ReadF32(y1);
                        for (int r = 0; r < t; r++)
                            for (int c = 0; c < n; c++)
                            {
                                float got = b[r * n + c];
                                string? bad = c switch
                                {
                                    plusRow => float.IsPositiveInfinity(got) ? null : "+∞",
                                    minusRow => float.IsNegativeInfinity(got) ? null : "−∞",
                                    nanRow => float.IsNaN(got) ? null : "NaN",
                                    _ => BitConverter.SingleToInt32Bits(got) == BitConverter.SingleToInt32Bits(a[r * n + c]) ? null : $"{a[r * n + c]:R} (bits of the finite weight's result)",
                                };
                                if (bad is not null) return $"{context}: y[{r}, {c}] = {got:R}, expected {bad}";
                            }
                        return CaseLog.Guards(context, scratch.CheckGuards());
                    });
                }
            }
        return log;
    }
}
