using System.Text;
using Serving.Client;
using Serving.Protocol.Rpc;

namespace Serving.Host.Tests.Client;

/// <summary>The .NET client against a real in-process server on the tiny synthetic model.</summary>
[Collection("server")]
[Trait("Category", "Slow")]
public sealed class ServingClientTests(ServerFixture server)
{
    private const string Prompt = "Once upon a time";

    private static GenerateOptions Greedy(int maxTokens = 12, string prompt = Prompt) =>
        new() { Prompt = prompt, MaxTokens = maxTokens, Temperature = 0 };

    [Fact]
    public async Task Info_lists_and_health_describe_the_running_server()
    {
        await using var client = await server.ConnectAsync();
        var info = await client.InfoAsync();
        Assert.Equal(server.Host.Model.Name, info.Model);
        Assert.Equal("cpu:0", info.Device);
        Assert.Equal(Serving.Abstractions.ContractVersion.Current.ToString(), info.ContractVersion); // "major.minor" since contract 2
        Assert.True(info.AuthRequired);
        Assert.Contains("generate", info.Methods);

        var model = Assert.Single(await client.ListModelsAsync());
        Assert.Equal((info.Model, 288, 6, 32000), (model.Id, model.Dim, model.Layers, model.Vocab));
        Assert.True(model.ContextLength > 0 && model.WeightBytes > 0);

        var devices = await client.ListDevicesAsync();
        Assert.Contains(devices, d => d.Id == "cpu:0" && d.Status == "serving");

        var health = await client.HealthAsync();
        Assert.Equal(("ok", true), (health.Status, health.Ready));
    }

    [Fact]
    public async Task Tokenize_and_detokenize_round_trip()
    {
        await using var client = await server.ConnectAsync();
        const string text = "Hello world, the quick brown fox.";
        int[] ids = await client.TokenizeAsync(text);
        int[] withBos = await client.TokenizeAsync(text, addBos: true);
        Assert.NotEmpty(ids);
        Assert.Equal(ids, withBos[1..]);
        Assert.Equal(text, await client.DetokenizeAsync(ids));
    }

    [Fact]
    public async Task Greedy_generation_is_deterministic_and_reports_usage()
    {
        await using var client = await server.ConnectAsync();
        var a = await client.GenerateAsync(Greedy());
        var b = await client.GenerateAsync(Greedy());
        Assert.Equal(a.TokenIds, b.TokenIds);
        Assert.Equal(a.Text, b.Text);
        Assert.Contains(a.FinishReason, new[] { FinishReasons.Length, FinishReasons.Eos });
        if (a.FinishReason == FinishReasons.Length) Assert.Equal(12, a.TokenIds.Count);
        Assert.Equal(a.TokenIds.Count, a.Usage.CompletionTokens);
        Assert.Equal((await client.TokenizeAsync(Prompt, addBos: true)).Length, a.Usage.PromptTokens);
        Assert.True(a.Usage.TotalMs > 0);
        // The second run's prompt was cached by the first (prefix caching of full blocks; the prompt is shorter
        // than a block, so nothing may be cached — but never more than the prompt).
        Assert.InRange(b.Usage.CachedPromptTokens, 0, b.Usage.PromptTokens);
    }

    [Fact]
    public async Task Streamed_tokens_concatenate_to_the_final_text()
    {
        await using var client = await server.ConnectAsync();
        var expected = await client.GenerateAsync(Greedy());

        var text = new StringBuilder();
        var ids = new List<int>();
        GenerateResult? final = null;
        int events = 0;
        await foreach (var e in client.GenerateStreamAsync(Greedy()))
        {
            Assert.Null(final); // the final event is the last one
            events++;
            if (e.IsFinal) { final = e.Result; continue; }
            text.Append(e.Text);
            if (e.TokenId >= 0) ids.Add(e.TokenId);
        }
        Assert.NotNull(final);
        Assert.Equal(final.Text, text.ToString());
        Assert.Equal(final.TokenIds, ids);
        Assert.Equal(expected.TokenIds, final.TokenIds);
        Assert.True(events >= ids.Count + 1);
    }

    [Fact]
    public async Task Cancelling_a_stream_cancels_the_request_on_the_server_and_frees_its_kv_blocks()
    {
        await using var client = await server.ConnectAsync();
        double cancelledBefore = (await client.MetricsAsync())["cancelled"];

        // The only long request in the suite: it must still be running when the cancel arrives. Cancelled after
        // the first token, it costs a few steps.
        using var cts = new CancellationTokenSource();
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var e in client.GenerateStreamAsync(new GenerateOptions { Prompt = Prompt, MaxTokens = 1500, Temperature = 1, Seed = 3 }, cts.Token))
            {
                if (e.IsFinal) Assert.Fail($"the generation ended ({e.Result!.FinishReason}) before the cancel took effect");
                if (++seen == 2) cts.Cancel();
            }
        });
        Assert.Equal(2, seen);

        var m = await server.WaitForMetricsAsync(client, m => m["cancelled"] > cancelledBefore && m["kv_blocks_used"] == 0 && m["running"] == 0);
        Assert.Equal(cancelledBefore + 1, m["cancelled"]);
        Assert.Equal(0, m["kv_blocks_used"]);
        Assert.Equal(0, m["running"]);
        Assert.True(client.IsConnected);
    }

    [Fact]
    public async Task Cancelling_a_non_streamed_generate_throws_and_cancels_it_on_the_server()
    {
        await using var client = await server.ConnectAsync();
        double cancelledBefore = (await client.MetricsAsync())["cancelled"];
        using var cts = new CancellationTokenSource();
        var call = client.GenerateAsync(new GenerateOptions { Prompt = Prompt, MaxTokens = 1500, Temperature = 1, Seed = 3 }, cts.Token);
        // Cancel once the request is running on the server.
        await server.WaitForMetricsAsync(client, m => m["running"] > 0);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        var m = await server.WaitForMetricsAsync(client, m => m["cancelled"] > cancelledBefore && m["kv_blocks_used"] == 0);
        Assert.Equal(cancelledBefore + 1, m["cancelled"]);
        Assert.Equal(0, m["kv_blocks_used"]);
    }

    [Fact]
    public async Task Concurrent_generates_on_one_connection_each_get_their_own_result()
    {
        await using var client = await server.ConnectAsync();
        // Prompts of distinct lengths, so every reply shows whose it is (usage.prompt_tokens).
        var prompts = Enumerable.Range(0, 6).Select(i => Enumerable.Range(100, 3 + i).ToArray()).ToArray();
        var tasks = prompts.Select(async (p, i) =>
        {
            var options = new GenerateOptions { Tokens = p, MaxTokens = 8, Temperature = 0 };
            if (i % 2 == 0) return (Result: await client.GenerateAsync(options), Streamed: (List<int>?)null);
            var ids = new List<int>();
            GenerateResult? final = null;
            await foreach (var e in client.GenerateStreamAsync(options))
            {
                if (e.IsFinal) final = e.Result;
                else if (e.TokenId >= 0) ids.Add(e.TokenId);
            }
            return (Result: final!, Streamed: ids);
        }).ToArray();
        var results = await Task.WhenAll(tasks);
        for (int i = 0; i < results.Length; i++)
        {
            var (result, streamed) = results[i];
            Assert.Equal(prompts[i].Length, result.Usage.PromptTokens);
            Assert.Equal(result.TokenIds.Count, result.Usage.CompletionTokens);
            if (streamed is not null) Assert.Equal(result.TokenIds, streamed);
        }
        Assert.Equal(0, client.PendingCalls);
    }

    [Fact]
    public async Task Bad_parameters_map_to_stable_error_codes_and_the_connection_stays_open()
    {
        await using var client = await server.ConnectAsync();
        async Task<RpcException> Refused(GenerateOptions o) => await Assert.ThrowsAsync<RpcException>(() => client.GenerateAsync(o));

        Assert.Equal(RpcErrorCodes.BadRequest, (await Refused(new GenerateOptions { Prompt = "x", Temperature = -1 })).Code);
        Assert.Equal(RpcErrorCodes.BadRequest, (await Refused(new GenerateOptions { Prompt = "x", Tokens = [1] })).Code);
        Assert.Equal(RpcErrorCodes.BadRequest, (await Refused(new GenerateOptions { Tokens = [32000] })).Code);
        Assert.Equal(RpcErrorCodes.BadRequest, (await Refused(new GenerateOptions { Prompt = "x", MaxTokens = 0 })).Code);
        Assert.Equal(RpcErrorCodes.NotFound, (await Refused(new GenerateOptions { Prompt = "x", Model = "no-such-model" })).Code);
        var tooLong = await Refused(new GenerateOptions { Tokens = Enumerable.Repeat(100, 5000).ToArray(), MaxTokens = 1 });
        Assert.Equal(RpcErrorCodes.ContextExceeded, tooLong.Code);
        Assert.True(tooLong.ErrorData.TryGetValue("prompt_tokens", out var n) && n.AsInt64() == 5000);

        // A refused stream throws on enumeration, before any event.
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var _ in client.GenerateStreamAsync(new GenerateOptions { Prompt = "x", TopP = 2 })) { }
        });
        Assert.Equal(RpcErrorCodes.BadRequest, e.Code);
        Assert.Equal(RpcErrorCodes.BadRequest, (await Assert.ThrowsAsync<RpcException>(() => client.DetokenizeAsync([-1]))).Code);

        Assert.True(client.IsConnected);
        Assert.Equal("ok", (await client.HealthAsync()).Status);
    }

    [Fact]
    public async Task Without_a_token_only_public_methods_work_and_a_wrong_token_is_refused()
    {
        await using (var anonymous = await ServingClient.ConnectAsync("127.0.0.1", server.Port))
        {
            Assert.True((await anonymous.InfoAsync()).AuthRequired);
            Assert.Equal("ok", (await anonymous.HealthAsync()).Status);
            var e = await Assert.ThrowsAsync<RpcException>(() => anonymous.TokenizeAsync("hi"));
            Assert.Equal(RpcErrorCodes.Unauthorized, e.Code);
            e = await Assert.ThrowsAsync<RpcException>(() => anonymous.GenerateAsync(Greedy(2)));
            Assert.Equal(RpcErrorCodes.Unauthorized, e.Code);
        }

        var wrong = await Assert.ThrowsAsync<RpcException>(() => ServingClient.ConnectAsync("127.0.0.1", server.Port, "wrong-token"));
        Assert.Equal(RpcErrorCodes.Unauthorized, wrong.Code);

        await using var authed = await ServingClient.ConnectAsync("127.0.0.1", server.Port, ServerFixture.Token);
        Assert.NotEmpty(await authed.TokenizeAsync("hi"));
    }
}
