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
/// Files written by llama.cpp's own quantizer (libllama's llama_model_quantize, i.e. llama-quantize, through
/// tests/llamacpp/quantize.py) are checked the same way, with its per-tensor type choices and fallbacks; one whose
/// fallback type Serving does not compute (q5_1) is refused by name. A missing dependency fails with what to run;
/// nothing passes silently.
/// </summary>
[Trait("Category", "Slow")]
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
        await AssertScoresAgree(model, type, maxDelta);
    }

    /// <summary>llama-quantize's file type, the f32 source's shape, and the bound on |Δ log p| per token.</summary>
    public static TheoryData<string, string, double> Quantized() => new()
    {
        // Measured max |Δ| on 93 tokens, 2026-11-26, Zen 5. Tiny's 288-wide rows are no multiple of 256, so llama-quantize
        // falls back: q6_K → q8_0 (the tied token_embd of Q4_0 files), q4_K → q5_0; its 768-wide ffn_down keeps q6_K.
        { "q4_0", "tiny", 0.2 },    // 0.062
        { "q8_0", "tiny", 0.2 },    // 0.053
        { "q5_0", "tiny", 0.2 },    // 0.065
        { "q4_K_M", "tiny", 0.2 },  // 0.101: q5_0, q8_0 and q6_K tensors
        { "q6_K", "tiny", 0.2 },    // 0.084: q8_0 and q6_K tensors
        { "q4_K_S", "256", 0.2 },   // 0.080: q4_K with q5_K
        { "q4_K_M", "256", 0.2 },   // 0.092: q4_K with q6_K attn_v/ffn_down/output
        { "q5_K_S", "256", 0.2 },   // 0.080
        { "q5_K_M", "256", 0.2 },   // 0.082: q5_K with q6_K
        { "q6_K", "256", 0.2 },     // 0.108
    };

    [Theory]
    [MemberData(nameof(Quantized))]
    public async Task Files_llama_quantize_writes_load_and_score_as_in_llama_cpp(string ftype, string shape, double maxDelta)
    {
        string source = Path.Combine(_dir, $"{shape}-f32.gguf");
        if (shape == "tiny")
            SyntheticModel.Create("tiny", DataType.F32, source, seed: 3);
        else
            SyntheticModel.Create(Small256, DataType.F32, source, seed: 3);
        string model = Path.Combine(_dir, $"{shape}-{ftype}.llama-quantize.gguf");
        await RunAsync(Quantize(source, model, ftype));
        await AssertScoresAgree(model, $"llama-quantize {ftype} of {shape}", maxDelta);
    }

    [Fact]
    public async Task A_llama_quantize_file_with_an_uncomputed_type_is_refused_naming_tensor_and_type()
    {
        // Q5_K_M of rows that are no multiple of 256: llama-quantize falls back to q5_1, which Serving does not compute.
        string source = Path.Combine(_dir, "tiny-f32.gguf");
        SyntheticModel.Create("tiny", DataType.F32, source, seed: 3);
        string model = Path.Combine(_dir, "tiny-q5_K_M.llama-quantize.gguf");
        await RunAsync(Quantize(source, model, "q5_K_M"));
        var psi = Host("perplexity", "--model", model, "--file", Path.Combine(InteropTests.RepoRoot(), "README.md"), "--ctx", $"{Ctx}",
            "--device", "cpu:0", "--plugins", Path.Combine(AppContext.BaseDirectory, "plugins"));
        (int exit, _, string stderr) = await ChildProcess.RunToEndAsync(psi, ChildTimeout);
        Assert.NotEqual(0, exit);
        Assert.Matches(@"blk\.\d+\.\w+\.weight: tensor type q5_1 is not supported", stderr);
        Assert.DoesNotContain("   at ", stderr); // a message, not a stack trace
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

    /// <summary>Serving's perplexity --json and llama.cpp's scores of the README on <paramref name="model"/> agree.</summary>
    private async Task AssertScoresAgree(string model, string what, double maxDelta)
    {
        string text = Path.Combine(InteropTests.RepoRoot(), "README.md");
        string ours = Path.Combine(_dir, Path.GetFileNameWithoutExtension(model) + ".serving.json");
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
            $"{what}: token {worstAt} (id {serving.Tokens[worstAt]}) log p llama.cpp {llama.LogProbs[worstAt]:0.0000} vs Serving {serving.LogProbs[worstAt]:0.0000}; " +
            $"max |Δ| {worst:0.0000} (bound {maxDelta}), mean {mean:0.00000} (bound {maxDelta / 4}); perplexity {llama.Ppl:0.00} vs {serving.Ppl:0.00}");
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

    private static string LlamaCppDir()
    {
        string dir = Path.Combine(InteropTests.RepoRoot(), "tests", "llamacpp");
        if (!Directory.Exists(Path.Combine(dir, "node_modules", "node-llama-cpp")) || !Directory.Exists(Path.Combine(dir, "node_modules", "@node-llama-cpp", "linux-x64")))
            Assert.Fail($"{dir}/node_modules lacks node-llama-cpp and its linux-x64 build: run scripts/setup.sh");
        return dir;
    }

    /// <summary>llama-quantize through libllama (tests/llamacpp/quantize.py, Debian's python3 and ctypes only).</summary>
    private static ProcessStartInfo Quantize(string source, string target, string ftype)
    {
        string dir = LlamaCppDir();
        var psi = new ProcessStartInfo("/usr/bin/python3") { WorkingDirectory = dir };
        foreach (string a in new[] { Path.Combine(dir, "quantize.py"), source, target, ftype }) psi.ArgumentList.Add(a);
        return psi;
    }

    private static ProcessStartInfo LlamaCpp(params string[] args)
    {
        string dir = LlamaCppDir();
        var psi = new ProcessStartInfo("node") { WorkingDirectory = dir };
        psi.ArgumentList.Add(Path.Combine(dir, "llamacpp.mjs"));
        foreach (string a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    private static Task<string> RunAsync(ProcessStartInfo psi, string? stdin = null) => ChildProcess.RunAsync(psi, ChildTimeout, stdin);
}
