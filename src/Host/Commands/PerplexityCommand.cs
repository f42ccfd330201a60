using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Serving.Engine.Models;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary>
/// <c>perplexity</c>: perplexity over non-overlapping windows of --ctx tokens, scored as llama.cpp's
/// llama-perplexity does: the file is tokenized once (with BOS when the model adds one), each window's first
/// token is replaced by BOS, and only the second half of each window is scored (each of those tokens then has at
/// least ctx/2 tokens of context), so the two tools can be compared on the same file. <c>--json</c> also writes each
/// scored token's id and natural-log probability, for token-by-token comparison with another implementation.
/// </summary>
internal static class PerplexityCommand
{
    public static Command Create()
    {
        var command = new Command("perplexity", "Perplexity of a model over a text file (llama-perplexity windowing)");
        var model = ModelOption.Create();
        var file = new Option<string>("--file", "-f") { Description = "UTF-8 text file", Required = true };
        var ctx = new Option<int>("--ctx", "-c") { Description = "Window length in tokens", DefaultValueFactory = _ => 128 };
        var chunks = new Option<int>("--chunks") { Description = "Score at most this many windows (0 = all)", DefaultValueFactory = _ => 0 };
        var json = new Option<string?>("--json") { Description = "Also write the result and every scored token's id and log-probability as JSON to this file" };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var noMmap = CommonOptions.NoMmap();
        var kvType = CommonOptions.KvType();
        var checkTensors = CommonOptions.CheckTensors();
        foreach (var o in new Option[] { model, file, ctx, chunks, json, device, threads, noMmap, kvType, checkTensors }) command.Options.Add(o);
        command.SetAction(parse =>
        {
            int n = parse.GetValue(ctx);
            if (n < 4 || n > 1 << 16) return CliErrors.Fail($"--ctx {n} out of range [4, 65536]");
            if (parse.GetValue(chunks) < 0) return CliErrors.Fail($"--chunks {parse.GetValue(chunks)} must be ≥ 0 (0 = all)");
            string path = parse.GetValue(file)!;
            if (!File.Exists(path)) return CliErrors.Fail($"text file not found: {path}");
            string text = File.ReadAllText(path);

            using var session = ModelSession.Open(parse, model, device, threads, noMmap,
                new ModelOptions { ContextLength = n, MaxBatchTokens = Math.Min(n, 512), MaxBatchSequences = 1, KvCacheTokens = n, KvCacheType = CommonOptions.KvCacheType(parse, kvType),
                    CheckTensors = parse.GetValue(checkTensors) });
            var lm = session.Loaded;
            var tok = lm.Tokenizer;
            int[] tokens = tok.Encode(text, tok.AddBos);
            // As llama-perplexity: at least two windows' worth of tokens.
            if (tokens.Length < 2 * n)
                return CliErrors.Fail($"the file has {tokens.Length} tokens; at least 2 × --ctx = {2 * n} are needed");
            int windows = tokens.Length / n;
            if (parse.GetValue(chunks) > 0) windows = Math.Min(windows, parse.GetValue(chunks));
            Console.Error.WriteLine($"perplexity: {tokens.Length} tokens, {windows} windows of {n}, scoring the second half of each");

            var m = lm.Model;
            int V = m.VocabSize, first = n / 2, step = m.MaxBatchTokens;
            var batch = new StepBatch(step, 1, m.MaxBlocksPerSequence);
            var logits = new float[step * V];
            double nll = 0, nll2 = 0;
            long count = 0;
            var scored = new List<int>();
            var logProbs = new List<double>();
            var sw = Stopwatch.StartNew();
            // llama-perplexity prints each window's running estimate as it goes; here the bar shows it, and the same
            // "[1]ppl,[2]ppl," line follows on stdout once done (a line written under a live bar would tear it).
            var running = new List<string>(windows);
            ProgressBar.Run("perplexity", ProgressUnit.Items, bar =>
            {
                bar.Report((0, windows));
                for (int w = 0; w < windows; w++)
                {
                    int start = w * n;
                    for (int chunkStart = 0; chunkStart < n; chunkStart += step)
                    {
                        int len = Math.Min(step, n - chunkStart);
                        batch.Clear();
                        batch.SequenceCount = 1;
                        for (int b = 0; b < m.MaxBlocksPerSequence; b++) batch.BlockTables[b] = b;
                        for (int i = 0; i < len; i++)
                        {
                            int pos = chunkStart + i;
                            int token = pos == 0 && tok.AddBos ? tok.BosId : tokens[start + pos];
                            // Rows first..n-2 predict the next token of the window; the last row has no target.
                            batch.AddToken(token, pos, 0, pos, wantLogits: pos >= first && pos < n - 1);
                        }
                        m.Forward(batch, logits);
                        for (int r = 0; r < batch.LogitCount; r++)
                        {
                            int pos = chunkStart + batch.LogitRows[r];
                            double lp = LogSoftmaxAt(logits.AsSpan(r * V, V), tokens[start + pos + 1]);
                            scored.Add(tokens[start + pos + 1]);
                            logProbs.Add(lp);
                            nll -= lp;
                            nll2 += lp * lp;
                            count++;
                        }
                    }
                    running.Add($"[{w + 1}]{Math.Exp(nll / count):0.0000}");
                    bar.Status($"PPL {Math.Exp(nll / count):0.0000}");
                    bar.Report((w + 1, windows));
                }
            });
            Console.WriteLine(string.Join(",", running) + ",");
            double mean = nll / count;
            double variance = nll2 / count - mean * mean;
            double stderr = Math.Sqrt(Math.Max(0, variance) / Math.Max(1, count - 1)) * Math.Exp(mean);
            Console.WriteLine($"Final estimate: PPL = {Math.Exp(mean):0.0000} +/- {stderr:0.00000}");
            if (parse.GetValue(json) is { } jsonPath)
            {
                var report = new { ppl = Math.Exp(mean), stderr, ctx = n, windows, scored = count, tokens = scored, logprobs = logProbs };
                File.WriteAllText(jsonPath, JsonSerializer.Serialize(report));
            }
            Console.WriteLine($"scored {count} tokens in {sw.Elapsed.TotalSeconds:0.00} s ({windows * n / sw.Elapsed.TotalSeconds:0.0} tokens/s evaluated)");
            return 0;
        });
        return command;
    }

    private static double LogSoftmaxAt(ReadOnlySpan<float> logits, int index)
    {
        float max = float.NegativeInfinity;
        foreach (float v in logits) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in logits) sum += Math.Exp(v - max);
        return logits[index] - max - Math.Log(sum);
    }
}
