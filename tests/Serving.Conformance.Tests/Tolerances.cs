using Serving.Abstractions;

namespace Serving.Conformance.Tests;

/// <summary>
/// The one table of error limits (docs/conformance.md, "Tolerances"). Metric: normalized MSE = Σ(y − ref)² / Σ ref² over one case's
/// output, against the float64 reference of the same inputs. Every number carries where it comes from; a limit is
/// set about 10× above the error the stated arithmetic produces on the suite's N(0, 1) data, and far below what a real
/// bug gives (a wrong index, nibble order or scale gives nMSE ≳ 1e-2). Ops whose results are exact (Copy, KvWrite,
/// Argmax) are compared bit for bit and have no entry here. A NaN or ±Inf that differs from the reference fails
/// regardless of the limit.
/// MatMul normalizes by <see cref="MatMulPower"/> = Σ_t,n Σ_k (x[t,k]·w[n,k])² instead of Σ ref²: the two are equal in
/// expectation for the suite's independent zero-mean data, but a tail case with one or two outputs (N = 1, T = 1) can
/// have ref ≈ 0 by cancellation, which makes Σ ref² meaningless as a scale while the rounding error of the products
/// (e.g. of x quantized to q8_0) stays proportional to the products' size. Found by the first run on the Cpu backend:
/// T = 1, N = 1, K = 96 q8_0 had ref 0.051 against products of size ≈ 1, and an error of 0.0027 from q8_0
/// activations — correct arithmetic, nMSE 2.8e-3 by Σ ref².
/// </summary>
public static class Tolerances
{
    /// <summary>One row of the table.</summary>
    /// <param name="Op">The op.</param>
    /// <param name="Type">Weight type (F32 for ops without weights).</param>
    /// <param name="Limit">Largest accepted normalized MSE.</param>
    /// <param name="Reason">Where the number comes from.</param>
    public sealed record Entry(OpKind Op, DataType Type, double Limit, string Reason);

    /// <summary>All limits.</summary>
    public static IReadOnlyList<Entry> Table { get; } =
    [
        new(OpKind.MatMul, DataType.F32, 1e-9,
            "f32 products, f32 accumulation over K ≤ 320: relative rounding ≈ √K·2^-24 ≈ 1e-6 per dot → nMSE ≈ 1e-12; 1e-9 also admits FMA/reassociation."),
        new(OpKind.MatMul, DataType.F16, 1e-6,
            "a backend may round x to f16 as ggml does (vec_dot_f16): 11-bit significand, relative error ≤ 2^-11 → nMSE ≈ 1e-7."),
        new(OpKind.MatMul, DataType.BF16, 2e-5,
            "a backend may round x to bf16 as ggml does (vec_dot_bf16): 8-bit significand, relative error ≤ 2^-9 → nMSE ≈ 1.3e-6."),
        new(OpKind.MatMul, DataType.Q8_0, 1e-3,
            "a backend may quantize x to q8_0 blocks as llama.cpp does (step amax/127 per 32 values, amax ≈ 2.3σ): noise ≈ (0.018σ)²/12 relative → nMSE ≈ 3e-5 on average. " +
            "A case with one output (T = N = 1) is a single χ²₁ sample whose 99.9th percentile is ≈ 11× the mean → ≈ 3.5e-4 (the Cpu backend: 3.1e-4 at T = N = 1, K = 32). " +
            "Bugs give ≥ 1e-2 (zero point off by one: 2e-2; a lost block scale or wrong nibble order: ≥ 1e-1)."),
        new(OpKind.MatMul, DataType.Q4_0, 1e-3,
            "as Q8_0: the weights' dequantized values are exact, the error is the q8_0 rounding of x (≈ 3e-5 on average, ≈ 3.5e-4 for a single output)."),
        new(OpKind.MatMul, DataType.Q5_0, 1e-3,
            "as Q4_0: d·(q − 16) is exact in f32 (11 + 5 bits), the error is the q8_0 rounding of x (≈ 3e-5 on average, ≈ 3.5e-4 " +
            "for a single output). Bugs (a lost or misplaced fifth bit: values off by 16·d; offset 8 instead of 16) give ≥ 1e-2."),
        new(OpKind.MatMul, DataType.Q5_K, 1e-3,
            "as Q4_K: (d·sc)·q and dmin·m are exact or one f32 rounding away, the error is the q8_0 rounding of x in both terms " +
            "(≈ 3e-5 on average, ≈ 3.5e-4 for a single output). Bugs (fifth bit from the wrong qh bit or byte, Q4_K's offsets) give ≥ 1e-2."),
        new(OpKind.MatMul, DataType.Q4_K, 1e-3,
            "as Q4_0: (d·sc)·q and dmin·m are formed exactly or with one f32 rounding (2^-24), the error is the q8_0 rounding of x " +
            "in both the d·sc·Σq·x term and the dmin·m·Σx term (≈ 3e-5 on average, ≈ 3.5e-4 for a single output). Bugs (wrong scale " +
            "unpacking, nibble order, sign of the min) give ≥ 1e-2."),
        new(OpKind.MatMul, DataType.Q6_K, 1e-3,
            "as Q4_0: d·sc·(q − 32) is exact or one f32 rounding away, the error is the q8_0 rounding of x (≈ 3e-5 on average, ≈ 3.5e-4 for a single output)."),
        new(OpKind.Embed, DataType.F32, 0, "a row copy: exact."),
        new(OpKind.Embed, DataType.F16, 0, "every f16 value is exact in f32."),
        new(OpKind.Embed, DataType.BF16, 0, "every bf16 value is exact in f32."),
        new(OpKind.Embed, DataType.Q8_0, 0, "d·q has ≤ 11 + 8 significant bits: exact in f32."),
        new(OpKind.Embed, DataType.Q4_0, 0, "d·(q − 8) has ≤ 11 + 4 significant bits: exact in f32."),
        new(OpKind.Embed, DataType.Q5_0, 0, "d·(q − 16) has ≤ 11 + 5 significant bits: exact in f32."),
        new(OpKind.Embed, DataType.Q5_K, 1e-12,
            "as Q4_K: d·sc·q (≤ 11 + 6 + 5 = 22 bits) and dmin·m (≤ 17 bits) are exact in f32, their difference takes at most one " +
            "f32 rounding (relative 2^-24) → nMSE ≤ 2^-48 ≈ 3.6e-15."),
        new(OpKind.Embed, DataType.Q4_K, 1e-12,
            "ggml forms (d·sc)·q − dmin·m in f32: d·sc·q (≤ 21 bits) and dmin·m (≤ 17 bits) are exact, their difference can " +
            "need more than 24 bits when the exponents differ, so one f32 rounding (relative 2^-24) → nMSE ≤ 2^-48 ≈ 3.6e-15."),
        new(OpKind.Embed, DataType.Q6_K, 1e-12,
            "ggml forms (d·sc)·(q − 32) in f32: d·sc is exact (11 + 8 bits), times a 6-bit q − 32 can need 25 bits, so one f32 " +
            "rounding (relative 2^-24) → nMSE ≤ 2^-48 ≈ 3.6e-15."),
        new(OpKind.RmsNorm, DataType.F32, 1e-10,
            "f32 sum of squares over D ≤ 1024 and one rsqrt: relative error ≈ 1e-6 at worst → nMSE ≈ 1e-12."),
        new(OpKind.Rope, DataType.F32, 1e-7,
            "the angle pos·invFreq is formed in f32 (as ggml does) for positions up to ~3000: absolute angle error ≤ ulp(3000)/2 ≈ 1.2e-4 rad → nMSE ≈ 1e-8; f32 sin/cos add ≈ 1e-14."),
        new(OpKind.Attention, DataType.F32, 1e-8,
            "f32 dot products (Dh ≤ 128), f32 exp and an online softmax over ≤ 80 positions: relative error ≈ 1e-6 → nMSE ≈ 1e-11; 1e-8 admits a polynomial expf of a few ulp."),
        new(OpKind.Attention, DataType.F16, 1e-8,
            "as F32, against the reference computed on the values an f16 cache holds (k and v rounded to nearest even): widening f16 to f32 is exact, so the arithmetic after it is the f32 case's."),
        new(OpKind.SwiGlu, DataType.F32, 1e-9,
            "one f32 exp, divide and two multiplies per element: ≤ ~4 ulp → nMSE ≈ 1e-13; 1e-9 admits a fast expf (ggml's is ≈ 1.5 ulp)."),
        new(OpKind.Add, DataType.F32, 1e-12, "one f32 rounding per element: nMSE ≤ 2^-48 ≈ 3.6e-15."),
    ];

    /// <summary>Σ_t,n Σ_k (x[t,k]·w[n,k])² = Σ_k (Σ_t x[t,k]²)(Σ_n w[n,k]²): MatMul's normalizer; x [T, K], w [N, K].</summary>
    public static double MatMulPower(ReadOnlySpan<float> x, int t, ReadOnlySpan<double> w, int n, int k)
    {
        double power = 0;
        for (int i = 0; i < k; i++)
        {
            double xs = 0, ws = 0;
            for (int r = 0; r < t; r++) xs += (double)x[r * k + i] * x[r * k + i];
            for (int c = 0; c < n; c++) ws += w[c * k + i] * w[c * k + i];
            power += xs * ws;
        }
        return power;
    }

    /// <summary>The limit for <paramref name="op"/> with <paramref name="type"/>; throws when the table has none.</summary>
    public static double For(OpKind op, DataType type)
        => Table.FirstOrDefault(e => e.Op == op && e.Type == type)?.Limit
           ?? throw new ArgumentException($"Tolerances has no entry for {op} {type}");
}
