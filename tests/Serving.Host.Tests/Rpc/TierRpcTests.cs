using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Routing;
using Serving.Engine.Synthetic;
using Serving.Host.Benchmarks;
using Serving.Host.Serve;
using Serving.Protocol.MessagePack;

namespace Serving.Host.Tests.Rpc;

/// <summary>
/// Two model tiers in one server, over the real RPC path: the tier fields of generate round trip, auto escalates or
/// keeps the small tier as its thresholds say (thresholds set so that the random-weight models' confidence decides
/// nothing by chance: always escalate, or never), streaming shows only the answering tier's tokens, and models, health,
/// server.info and metrics list the tiers.
/// </summary>
[Collection("rpc")]
public sealed class TierRpcTests(RpcHostFixture fixture, TierRpcTests.LargeModel large) : IClassFixture<TierRpcTests.LargeModel>
{
    /// <summary>A second tiny model (f32: more weight bytes, so it ranks as the costlier tier; same vocabulary).</summary>
    public sealed class LargeModel : IDisposable
    {
        private readonly string _dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "serving-tiers-" + Guid.NewGuid().ToString("N"));

        public LargeModel()
        {
            Directory.CreateDirectory(_dir);
            Path = System.IO.Path.Combine(_dir, "tiny-f32.gguf");
            SyntheticModel.Create("tiny", DataType.F32, Path, seed: 11);
        }

        public string Path { get; }

        public void Dispose()
        {
            try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
        }
    }

    private readonly LargeModel _large = large;

    private ServingHost Start(TierPolicyOptions policy)
    {
        var model = new ModelOptions { ContextLength = RpcHostFixture.ContextLength, KvCacheTokens = 512, MaxBatchTokens = 128, MaxBatchSequences = 8 };
        return fixture.Start(o => o with
        {
            // Listed large first: the server orders tiers by weight bytes, not by the command line.
            Tiers = [new TierSpec("large", _large.Path, "cpu:0", model), new TierSpec("small", fixture.ModelPath, "cpu:0", model)],
            Policy = policy,
        });
    }

    private static readonly TierPolicyOptions AlwaysEscalate = new() { ProbeTokens = 4, MinMeanLogProb = 0, MaxMeanEntropy = 0 };
    private static readonly TierPolicyOptions NeverEscalate = new() { ProbeTokens = 4, MinMeanLogProb = double.NegativeInfinity, MaxMeanEntropy = double.PositiveInfinity };

    private static long[] Ids(MsgValue array) => [.. Enumerable.Range(0, array.Count).Select(i => { array[i].TryGetInt64(out long x); return x; })];

    [Fact]
    public async Task NamedTiers_AnswerThemselves_WithTheTierFields()
    {
        await using var host = Start(AlwaysEscalate);
        Assert.Equal(["small", "large"], host.Tiers.Select(t => t.Name));
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        foreach (var tier in new[] { "small", "large" })
        {
            var r = await c.CallAsync("generate", Args.Generate("Once upon a time", 6, extra: ("model", tier)));
            Assert.False(r.IsError, r.ToString());
            Assert.Equal(tier, Args.Str(r.Result, "tier"));
            Assert.Equal("requested", Args.Str(r.Result, "tier_reason"));
            Assert.True(Args.Field(r.Result, "confidence").IsNil);
            Assert.Equal(1, Args.Field(r.Result, "tiers_tried").Count);
        }
    }

    [Fact]
    public async Task Auto_Escalates_AndStreamsOnlyTheLargeTiersTokens()
    {
        await using var host = Start(AlwaysEscalate);
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        var direct = await c.CallAsync("generate", Args.Generate("Once upon a time", 8, extra: ("model", "large")));
        uint id = await c.SendRequestAsync("generate", Args.Generate("Once upon a time", 8, stream: true));
        var r = await c.WaitReplyAsync(id);
        Assert.False(r.IsError, r.ToString());
        Assert.Equal("large", Args.Str(r.Result, "tier"));
        Assert.Equal("low_confidence", Args.Str(r.Result, "tier_reason"));
        var tried = Args.Field(r.Result, "tiers_tried");
        Assert.Equal(["small", "large"], Enumerable.Range(0, tried.Count).Select(i => { tried[i].TryGetString(out var s); return s; }));
        var confidence = Args.Field(r.Result, "confidence");
        Assert.Equal(4, Args.Int(confidence, "tokens"));
        Assert.True(Args.Field(confidence, "mean_logprob").TryGetDouble(out double lp) && lp < 0);
        // Greedy restart from the prompt: the large tier's own answer, and every streamed token is one of it.
        Assert.Equal(Ids(Args.Field(direct.Result, "tokens")), Ids(Args.Field(r.Result, "tokens")));
        var streamed = c.Notifications.Where(n => n.Method == "generate.token").Select(n => Args.Int(n.Params[0], "token")).Where(t => t >= 0);
        Assert.Equal(Ids(Args.Field(r.Result, "tokens")), streamed);

        var metrics = (await c.CallAsync("metrics")).Result;
        var tiers = Args.Field(metrics, "tiers");
        Assert.Equal(1, Args.Int(Args.Field(tiers, "small"), "escalations"));
        Assert.Equal(1, Args.Int(Args.Field(tiers, "small"), "requests"));
        Assert.Equal(2, Args.Int(Args.Field(tiers, "large"), "answered"));
        Assert.Equal(0, Args.Int(Args.Field(tiers, "small"), "kv_blocks_used"));
        Assert.True(Args.Field(Args.Field(tiers, "large"), "device_seconds").TryGetDouble(out double busy) && busy > 0);
        Assert.True(Args.Int(Args.Field(tiers, "small"), "generated_tokens") >= 4); // the probe's tokens are counted where they ran
    }

    [Fact]
    public async Task Auto_Confident_SmallAnswers_AndMinTierOrContextSkipIt()
    {
        await using var host = Start(NeverEscalate);
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        var r = await c.CallAsync("generate", Args.Generate("Once upon a time", 6, extra: ("model", "auto")));
        Assert.Equal(("small", "confident"), (Args.Str(r.Result, "tier"), Args.Str(r.Result, "tier_reason")));
        var min = await c.CallAsync("generate", Args.Generate("Once upon a time", 6, extra: ("min_tier", "large")));
        Assert.Equal(("large", "min_tier"), (Args.Str(min.Result, "tier"), Args.Str(min.Result, "tier_reason")));
        Assert.True(Args.Field(min.Result, "confidence").IsNil);
    }

    [Fact]
    public async Task BadTierArguments_AreRefused_WithTheTiersNamed()
    {
        await using var host = Start(NeverEscalate);
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        var missing = await c.CallAsync("generate", Args.Generate("Hi", 2, extra: ("model", "medium")));
        Assert.Equal("not_found", missing.Code);
        Assert.Contains("'small'", missing.Message, StringComparison.Ordinal);
        Assert.Equal("bad_request", (await c.CallAsync("generate", Args.Generate("Hi", 2, extra: ("min_tier", "auto")))).Code);
        Assert.Equal("bad_request", (await c.CallAsync("generate", Args.Generate("Hi", 2, extra: [("model", "small"), ("min_tier", "large")]))).Code);
        Assert.Equal("bad_request", (await c.CallAsync("generate", Args.Generate("Hi", 2, extra: ("allow_shed", "yes")))).Code);
    }

    [Fact]
    public async Task ModelsHealthAndInfo_ListTheTiers()
    {
        await using var host = Start(NeverEscalate);
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        var models = (await c.CallAsync("models.list")).Result;
        Assert.Equal(2, models.Count);
        Assert.Equal("small", Args.Str(models[0], "tier"));
        Assert.Equal("large", Args.Str(models[1], "tier"));
        var health = (await c.CallAsync("health")).Result;
        Assert.Equal("ok", Args.Str(health, "status"));
        Assert.Equal(2, Args.Field(health, "tiers").Count);
        var info = (await c.CallAsync("server.info")).Result;
        Assert.Equal("auto", Args.Str(info, "default_model"));
        Assert.Equal(2, Args.Field(info, "tiers").Count);
    }

    [Fact]
    public async Task BenchServe_ReportsTheShareEachTierAnswered()
    {
        await using var host = Start(AlwaysEscalate);
        foreach (var (model, tier, reason) in new[] { ("auto", "large", "low_confidence"), ("small", "small", "requested") })
        {
            var report = await ServeBenchmark.RunAsync(new ServeBenchOptions
            {
                Host = "127.0.0.1", Port = host.EndPoint.Port, Clients = 2, Requests = 4, PromptTokens = 12, MaxTokens = 6, WarmupRequests = 0, Model = model,
            });
            Assert.Equal((4, 0), (report.Completed, report.Failed));
            Assert.Equal(new Dictionary<string, int> { [tier] = 4 }, report.AnsweredByTier);
            Assert.Equal(new Dictionary<string, int> { [reason] = 4 }, report.TierReasons);
            Assert.Equal($"{tier} 100 %", report.TierShares);
        }
    }

    [Fact]
    public async Task LargeTierDraftedBySmall_GivesTheLargeTiersOwnGreedyTokens()
    {
        // serve --model small=… --model large=… --draft large=small: the large tier speculates with a second load of the
        // small file (fixed k, so drafts are proposed whatever the two random models' agreement); greedy output must be
        // the large tier's own, token for token, and no block stays held in either cache.
        var prompts = new[] { "Once upon a time", "The little dog", "She said" };
        var expected = new List<long[]>();
        await using (var plain = Start(NeverEscalate))
        {
            await using var c = await RawRpcClient.ConnectAsync(plain.EndPoint);
            foreach (var p in prompts)
                expected.Add(Ids(Args.Field((await c.CallAsync("generate", Args.Generate(p, 12, extra: ("model", "large")))).Result, "tokens")));
        }
        var model = new ModelOptions { ContextLength = RpcHostFixture.ContextLength, KvCacheTokens = 512, MaxBatchTokens = 128, MaxBatchSequences = 8 };
        await using var host = fixture.Start(o => o with
        {
            Tiers = [new TierSpec("large", _large.Path, "cpu:0", model, Draft: new TierDraft(fixture.ModelPath, MaxTokens: 3, Adaptive: false)),
                     new TierSpec("small", fixture.ModelPath, "cpu:0", model)],
            Policy = NeverEscalate,
        });
        // One connection per prompt, all at once, so the drafted rows share the large tier's steps.
        var clients = new List<RawRpcClient>();
        foreach (var _ in prompts) clients.Add(await RawRpcClient.ConnectAsync(host.EndPoint));
        var calls = prompts.Select((p, i) => clients[i].CallAsync("generate", Args.Generate(p, 12, extra: ("model", "large")))).ToList();
        for (int i = 0; i < prompts.Length; i++)
        {
            var r = await calls[i];
            Assert.False(r.IsError, r.ToString());
            Assert.Equal("large", Args.Str(r.Result, "tier"));
            Assert.Equal(expected[i], Ids(Args.Field(r.Result, "tokens")));
            Assert.True(Args.Int(Args.Field(r.Result, "usage"), "draft_tokens") > 0);
        }
        var metrics = (await clients[0].CallAsync("metrics")).Result;
        foreach (var c in clients) await c.DisposeAsync();
        Assert.True(Args.Int(metrics, "draft_tokens") > 0);
        Assert.Equal(0, Args.Int(metrics, "kv_blocks_used"));
        Assert.Equal(0, Args.Int(metrics, "draft_kv_blocks_used"));
    }

    [Fact]
    public void DraftArguments_NameTheTierAndTheDraft()
    {
        (string?, string)[] tiers = [("small", fixture.ModelPath), ("large", _large.Path)];
        Assert.Equal(fixture.ModelPath, Commands.TierOptions.ParseDrafts(["large=small"], tiers)["large"]);
        Assert.Equal("self:q4_0", Commands.TierOptions.ParseDrafts(["large=self:q4_0"], tiers)["large"]);
        Assert.Contains("no tier is named 'huge'", Assert.Throws<ArgumentException>(() => Commands.TierOptions.ParseDrafts(["huge=small"], tiers)).Message);
        Assert.Contains("name the tier", Assert.Throws<ArgumentException>(() => Commands.TierOptions.ParseDrafts(["self"], tiers)).Message);
        Assert.Contains("neither a tier", Assert.Throws<ArgumentException>(() => Commands.TierOptions.ParseDrafts(["large=/no/such.gguf"], tiers)).Message);
        Assert.Contains("cannot draft for itself", Assert.Throws<ArgumentException>(() => Commands.TierOptions.ParseDrafts(["large=large"], tiers)).Message);
        // A one-model server takes a bare draft.
        Assert.Equal("self", Commands.TierOptions.ParseDrafts(["self"], [(null, fixture.ModelPath)])[""]);
    }

    [Fact]
    public void TiersThatDoNotFit_AreRefusedBeforeLoading_NamingEachNeed()
    {
        var options = new ModelOptions { ContextLength = 128 };
        var e = Assert.Throws<ModelLoadException>(() => TierMemoryPlan.Plan(
            [("small", fixture.ModelPath, "cpu:0", options), ("large", _large.Path, "cpu:0", options)], _ => 1L << 20));
        Assert.Contains("small needs", e.Message, StringComparison.Ordinal);
        Assert.Contains("large needs", e.Message, StringComparison.Ordinal);
        Assert.Contains("cpu:0", e.Message, StringComparison.Ordinal);
        // With room, each automatic KV cache gets between one and four contexts.
        var plan = TierMemoryPlan.Plan([("small", fixture.ModelPath, "cpu:0", options), ("large", _large.Path, "cpu:0", options)], _ => 1L << 34);
        Assert.All(plan, n => Assert.InRange(n.KvTokens, 128, 512));
    }
}
