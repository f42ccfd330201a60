using Serving.Engine.Gguf;
using Serving.Engine.Models;
using Serving.Engine.Quantization;

namespace Serving.Host.Tests.Models;

/// <summary>
/// A plain float64 Llama forward pass (one sequence, full recompute, no cache), written from the math rather
/// than from the engine, to check the device path end to end. Legend: T tokens, D dim, H/Hkv heads, Dh head dim.
/// </summary>
internal static class ReferenceLlama
{
    /// <summary>
    /// Σ (y − r)² / Σ r² over every row and logit: the device's logits [rows, vocab] flat against the reference's
    /// per-row arrays. Asserts every device logit is finite.
    /// </summary>
    public static double NormalizedError(float[] logits, double[][] expected, int vocab)
    {
        double err = 0, norm = 0;
        for (int t = 0; t < expected.Length; t++)
            for (int i = 0; i < vocab; i++)
            {
                double y = logits[t * vocab + i], r = expected[t][i];
                Assert.True(double.IsFinite(y), $"row {t} logit {i} is {y}");
                err += (y - r) * (y - r);
                norm += r * r;
            }
        return err / norm;
    }

    /// <summary>Logits [T, V] for <paramref name="tokens"/> at positions 0..T-1. With an f16 <paramref name="kvCache"/>,
    /// every cached k and v element is rounded to half precision as the device's cache stores it (the contract's KvWrite).</summary>
    public static double[][] Forward(GgufFile file, LlamaConfig c, int[] tokens, Serving.Abstractions.DataType kvCache = Serving.Abstractions.DataType.F32)
    {
        int T = tokens.Length, D = c.Dim, Dh = c.HeadDim, H = c.Heads, Hkv = c.KvHeads, F = c.FfnDim;
        double[][] Matrix(string name, int rows, int cols)
        {
            var t = file.GetTensor(name);
            var m = new double[rows][];
            var row = new float[cols];
            var bytes = file.GetTensorBytes(t);
            int rowBytes = (int)t.RowBytes;
            for (int r = 0; r < rows; r++)
            {
                Dequantizer.DequantizeRow(t.Type, bytes.Slice(r * rowBytes, rowBytes), row);
                m[r] = Array.ConvertAll(row, v => (double)v);
            }
            return m;
        }
        double[] Vector(string name, int n) => Matrix(name, 1, n)[0];
        void AddBias(double[][] rows, string name) // qwen2 has q/k/v biases
        {
            if (file.FindTensor(name) is null) return;
            var b = Vector(name, rows[0].Length);
            foreach (var r in rows)
                for (int i = 0; i < r.Length; i++) r[i] += b[i];
        }
        double[][] MatMul(double[][] x, double[][] w) =>
            x.Select(xr => w.Select(wr => { double s = 0; for (int k = 0; k < xr.Length; k++) s += xr[k] * wr[k]; return s; }).ToArray()).ToArray();
        double[] Norm(double[] x, double[] w)
        {
            double ms = x.Sum(v => v * v) / x.Length;
            double inv = 1 / Math.Sqrt(ms + c.RmsEps);
            return x.Select((v, i) => v * inv * w[i]).ToArray();
        }
        void Rope(double[] row, int heads, int pos)
        {
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < c.RopeDim / 2; i++)
                {
                    double theta = pos * Math.Pow(c.RopeTheta, -2.0 * i / c.RopeDim) * c.RopeFrequencyScale;
                    int a = h * Dh + (c.RopeStyle == Serving.Abstractions.RopeStyle.Normal ? 2 * i : i);
                    int b = c.RopeStyle == Serving.Abstractions.RopeStyle.Normal ? a + 1 : a + c.RopeDim / 2;
                    double x0 = row[a], x1 = row[b];
                    row[a] = x0 * Math.Cos(theta) - x1 * Math.Sin(theta);
                    row[b] = x0 * Math.Sin(theta) + x1 * Math.Cos(theta);
                }
        }

        var embd = Matrix("token_embd.weight", c.VocabSize, D);
        var x = tokens.Select(t => (double[])embd[t].Clone()).ToArray();
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            var h = x.Select(r => Norm(r, Vector(p + "attn_norm.weight", D))).ToArray();
            var q = MatMul(h, Matrix(p + "attn_q.weight", H * Dh, D));
            var k = MatMul(h, Matrix(p + "attn_k.weight", Hkv * Dh, D));
            var v = MatMul(h, Matrix(p + "attn_v.weight", Hkv * Dh, D));
            AddBias(q, p + "attn_q.bias");
            AddBias(k, p + "attn_k.bias");
            AddBias(v, p + "attn_v.bias");
            for (int t = 0; t < T; t++) { Rope(q[t], H, t); Rope(k[t], Hkv, t); }
            if (kvCache == Serving.Abstractions.DataType.F16)
                foreach (double[] row in k.Concat(v))
                    for (int i = 0; i < row.Length; i++) row[i] = (double)(Half)(float)row[i];
            var attn = new double[T][];
            for (int t = 0; t < T; t++)
            {
                attn[t] = new double[H * Dh];
                for (int hd = 0; hd < H; hd++)
                {
                    int kvh = hd / (H / Hkv);
                    var scores = new double[t + 1];
                    for (int j = 0; j <= t; j++)
                    {
                        double s = 0;
                        for (int d = 0; d < Dh; d++) s += q[t][hd * Dh + d] * k[j][kvh * Dh + d];
                        scores[j] = s / Math.Sqrt(Dh);
                    }
                    double max = scores.Max();
                    var e = scores.Select(s => Math.Exp(s - max)).ToArray();
                    double sum = e.Sum();
                    for (int j = 0; j <= t; j++)
                        for (int d = 0; d < Dh; d++) attn[t][hd * Dh + d] += e[j] / sum * v[j][kvh * Dh + d];
                }
            }
            var o = MatMul(attn, Matrix(p + "attn_output.weight", D, H * Dh));
            x = x.Select((r, t) => r.Select((val, i) => val + o[t][i]).ToArray()).ToArray();
            h = x.Select(r => Norm(r, Vector(p + "ffn_norm.weight", D))).ToArray();
            var g = MatMul(h, Matrix(p + "ffn_gate.weight", F, D));
            var u = MatMul(h, Matrix(p + "ffn_up.weight", F, D));
            var act = g.Select((r, t) => r.Select((gv, i) => gv / (1 + Math.Exp(-gv)) * u[t][i]).ToArray()).ToArray();
            var down = MatMul(act, Matrix(p + "ffn_down.weight", D, F));
            x = x.Select((r, t) => r.Select((val, i) => val + down[t][i]).ToArray()).ToArray();
        }
        var outNorm = Vector("output_norm.weight", D);
        var head = file.FindTensor("output.weight") is null ? embd : Matrix("output.weight", c.VocabSize, D);
        return MatMul(x.Select(r => Norm(r, outNorm)).ToArray(), head);
    }
}
