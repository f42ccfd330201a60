using System.Diagnostics;
using System.Text.Json;
using Serving.Abstractions;
using Serving.Engine.Synthetic;

namespace Serving.Host.Tests.Interop;

/// <summary>
/// llama.cpp itself loads the GGUF files Serving writes and scores the same text. node-llama-cpp 3.21.1 carries a
/// prebuilt CPU build of llama.cpp; scripts/setup.sh installs it into tests/llamacpp, and tests/llamacpp/llamacpp.mjs
/// runs it. For each weight type, Serving's <c>perplexity --json</c> (as a user runs it, in its own process) and
/// llama.cpp score the second half of each window of the repository's README: both must tokenize the text the same
/// (the same scored token ids) and give every scored token the same log-probability within what their different
/// arithmetic allows (llama.cpp rounds activations to bf16 against bf16 weights and to q8 with f16 scales against
/// quantized ones; Serving keeps f32 activations, or q8 with f32 scales). For scale: the same model's f32 and q4_0
/// files differ by ~0.8 nats at worst on these tokens, so a wrong layer, RoPE or tokenizer shows far above the bounds.
/// A missing dependency fails with what to run; nothing passes silently.
/// </summary>
public sealed class LlamaCppTests : IDisposable
{
    private const int Ctx = 64, Chunks = 3;
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromSeconds(120);

    // Dim 256 and FFN 512: every row whole super-blocks of 256, as the K-quants need (tiny's 288 is not).
    private static readonly SyntheticShape Small256 = new("llamacpp-256", Dim: 256, Layers: 2, Heads: 8, KvHeads: 2, FeedForward: 512, Vocab: 32000, Context: 512, RopeTheta: 500000f);

    private readonly string _dir = Directory.CreateTempSubdirectory("serving-llamacpp-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>
    /// Weight type, shape (tiny or the 256-dim one), and the largest |Δ log p| allowed on any scored token (the mean
    /// must stay under a quarter of it). Measured on 93 tokens, 2026-11-26, Zen 5.
    /// </summary>
    public static TheoryData<string, string, double> Cases() => new()
    {
        { "f32", "tiny", 0.005 },   // measured 0.0010
        { "f16", "tiny", 0.01 },    // measured 0.0035
        { "bf16", "tiny", 0.05 },   // measured 0.017: llama.cpp rounds activations to bf16
        { "q8_0", "tiny", 0.2 },    // measured 0.073: the two q8 activation roundings
        { "q4_0", "tiny", 0.2 },    // measured 0.070
        { "q5_0", "256", 0.2 },     // measured 0.065
        { "q4_K", "256", 0.2 },     // measured 0.099: llama.cpp's q8_K activations have one scale per 256, ours per 32
        { "q5_K", "256", 0.2 },     // measured 0.099
        { "q6_K", "256", 0.2 },     // measured 0.078
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task LlamaCpp_loads_the_file_and_scores_every_token_as_Serving_does(string type, string shape, double maxDelta)
    {
        DataType dataType = ModelsTypeName(type);
        string model = Path.Combine(_dir, $"{shape}-{type}.gguf");
        if (shape == "tiny")
            SyntheticModel.Create("tiny", dataType, model, seed: 3);
        else
            SyntheticModel.Create(Small256, dataType, model, seed: 3);
        string text = Path.Combine(InteropTests.RepoRoot(), "README.md");

        string ours = Path.Combine(_dir, $"{shape}-{type}.serving.json");
        await RunAsync(Host("perplexity", "--model", model, "--file", text, "--ctx", $"{Ctx}", "--chunks", $"{Chunks}", "--json", ours,
            "--device", "cpu:0", "--plugins", Path.Combine(AppContext.BaseDirectory, "plugins")));
        var serving = Scores.Parse(File.ReadAllText(ours));
        var llama = Scores.Parse(await RunAsync(LlamaCpp("perplexity", model, text, $"{Ctx}", $"{Chunks}")));

        Assert.Equal(Chunks * (Ctx / 2 - 1), serving.Tokens.Length);
        Assert.Equal(llama.Tokens, serving.Tokens); // the same tokenization of the text
        double worst = 0, sum = 0;
        int worstAt = -1;
        for (int i = 0; i < serving.LogProbs.Length; i++)
        {
            Assert.True(double.IsFinite(llama.LogProbs[i]) && double.IsFinite(serving.LogProbs[i]), $"token {i}: llama.cpp {llama.LogProbs[i]}, Serving {serving.LogProbs[i]}");
            double d = Math.Abs(llama.LogProbs[i] - serving.LogProbs[i]);
            sum += d;
            if (d > worst) (worst, worstAt) = (d, i);
        }
        double mean = sum / serving.LogProbs.Length;
        Assert.True(worst <= maxDelta && mean <= maxDelta / 4,
            $"{type}: token {worstAt} (id {serving.Tokens[worstAt]}) log p llama.cpp {llama.LogProbs[worstAt]:0.0000} vs Serving {serving.LogProbs[worstAt]:0.0000}; " +
            $"max |Δ| {worst:0.0000} (bound {maxDelta}), mean {mean:0.00000} (bound {maxDelta / 4}); perplexity {llama.Ppl:0.00} vs {serving.Ppl:0.00}");
    }

    [Fact]
    public async Task LlamaCpp_tokenizes_as_Serving_does_with_the_synthetic_vocabulary()
    {
        string model = Path.Combine(_dir, "tiny-q8_0.gguf");
        SyntheticModel.Create("tiny", DataType.Q8_0, model, seed: 3);
        string[] strings =
        [
            "Once upon a time", " leading space", "two  spaces and\ttab", "line one\nline two\n\n", "numbers 1234567 and 3.14159",
            "Ünïcödé façade naïve", "日本語のテキスト", "emoji 🦙🚀", "mixed-CASE_words, punctuation!? (yes)", "  ", "",
        ];
        string input = JsonSerializer.Serialize(strings);
        int[][] llama = JsonDocument.Parse(await RunAsync(LlamaCpp("tokenize", model), input)).RootElement.GetProperty("tokens")
            .EnumerateArray().Select(a => a.EnumerateArray().Select(t => t.GetInt32()).ToArray()).ToArray();
        int[][] serving = JsonSerializer.Deserialize<int[][]>(await RunAsync(Host("tokenize", "--model", model, "--json"), input))!;
        Assert.Equal(strings.Length, serving.Length);
        for (int i = 0; i < strings.Length; i++)
            Assert.True(llama[i].SequenceEqual(serving[i]), $"\"{strings[i]}\": llama.cpp [{string.Join(',', llama[i])}] vs Serving [{string.Join(',', serving[i])}]");
    }

    private static DataType ModelsTypeName(string type) => type switch
    {
        "f32" => DataType.F32, "f16" => DataType.F16, "bf16" => DataType.BF16, "q8_0" => DataType.Q8_0, "q4_0" => DataType.Q4_0,
        "q5_0" => DataType.Q5_0, "q4_K" => DataType.Q4_K, "q5_K" => DataType.Q5_K, "q6_K" => DataType.Q6_K,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    private sealed record Scores(double Ppl, int[] Tokens, double[] LogProbs)
    {
        public static Scores Parse(string json)
        {
            var root = JsonDocument.Parse(json).RootElement;
            return new Scores(root.GetProperty("ppl").GetDouble(),
                root.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray(),
                root.GetProperty("logprobs").EnumerateArray().Select(t => t.GetDouble()).ToArray());
        }
    }

    private static ProcessStartInfo Host(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Serving.Host.dll"));
        foreach (string a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    private static ProcessStartInfo LlamaCpp(params string[] args)
    {
        string dir = Path.Combine(InteropTests.RepoRoot(), "tests", "llamacpp");
        if (!Directory.Exists(Path.Combine(dir, "node_modules", "node-llama-cpp")) || !Directory.Exists(Path.Combine(dir, "node_modules", "@node-llama-cpp", "linux-x64")))
            Assert.Fail($"{dir}/node_modules lacks node-llama-cpp and its linux-x64 build: run scripts/setup.sh");
        var psi = new ProcessStartInfo("node") { WorkingDirectory = dir };
        psi.ArgumentList.Add(Path.Combine(dir, "llamacpp.mjs"));
        foreach (string a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    private static Task<string> RunAsync(ProcessStartInfo psi, string? stdin = null) => ChildProcess.RunAsync(psi, ChildTimeout, stdin);
}
