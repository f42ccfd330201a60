using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Serving.Host.Serve;
using Serving.Host.Tests.Rpc;

namespace Serving.Host.Tests.Interop;

/// <summary>
/// Independent MessagePack implementations against the server: the example clients in clients/python (Debian's
/// python3-msgpack) and clients/node (npm's @msgpack/msgpack) run as child processes against an in-process
/// server with a token. Each streams a generation (tokens arrive as notifications carrying the request's msgid
/// and add up to the final text) and cancels one mid-stream (the reply says cancelled, the metrics count it).
/// A missing dependency fails with what to run; it never passes silently.
/// </summary>
[Collection("rpc")]
[Trait("Category", "Slow")]
public sealed class InteropTests(RpcHostFixture fixture) : IAsyncLifetime
{
    private const string Token = "interop-secret-token";
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromSeconds(60);
    private ServingHost _host = null!;
    private string _tokenFile = null!;

    public Task InitializeAsync()
    {
        _host = fixture.Start(o => o with { AuthToken = Token });
        _tokenFile = Path.Combine(Path.GetTempPath(), $"serving-interop-{Guid.NewGuid():N}.token");
        File.WriteAllText(_tokenFile, Token + "\n");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _host.StopAsync(TimeSpan.Zero);
        File.Delete(_tokenFile);
    }

    public enum Client { Python, Node }

    [Theory]
    [InlineData(Client.Python)]
    [InlineData(Client.Node)]
    public async Task Client_StreamsAGeneration_TokensAreNotificationsOfItsMsgid_AndAddUpToTheText(Client client)
    {
        var events = await RunClientAsync(client, "generate", "--max-tokens", "8", "Once upon a time");
        long msgid = Single(events, "request").GetProperty("msgid").GetInt64();
        var tokens = events.Where(e => Kind(e) == "token").ToList();
        var result = Single(events, "result").GetProperty("result");

        Assert.NotEmpty(tokens);
        Assert.All(tokens, t => Assert.Equal(msgid, t.GetProperty("id").GetInt64()));
        Assert.Equal(result.GetProperty("text").GetString(), string.Concat(tokens.Select(t => t.GetProperty("text").GetString())));
        var generated = result.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray();
        Assert.Equal(generated, tokens.Select(t => t.GetProperty("token").GetInt32()).Where(t => t >= 0).ToArray());
        int completion = result.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.Equal(generated.Length, completion);
        Assert.True(completion == 8 || result.GetProperty("finish_reason").GetString() == "eos", result.ToString());
    }

    [Theory]
    [InlineData(Client.Python)]
    [InlineData(Client.Node)]
    public async Task Client_CancelsMidStream_ReplySaysCancelled_MetricsCountIt(Client client)
    {
        long cancelledBefore = _host.Scheduler.GetMetrics().Cancelled;
        var events = await RunClientAsync(client, "generate", "--max-tokens", "100", "--cancel-after", "2", "Once upon a time");

        long msgid = Single(events, "request").GetProperty("msgid").GetInt64();
        var cancel = Single(events, "cancel");
        Assert.True(cancel.GetProperty("result").GetBoolean());
        var result = Single(events, "result").GetProperty("result");
        Assert.Equal("cancelled", result.GetProperty("finish_reason").GetString());
        int completion = result.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.InRange(completion, 2, 99);
        var tokens = events.Where(e => Kind(e) == "token").ToList();
        Assert.All(tokens, t => Assert.Equal(msgid, t.GetProperty("id").GetInt64()));
        Assert.Equal(result.GetProperty("text").GetString(), string.Concat(tokens.Select(t => t.GetProperty("text").GetString())));

        Assert.Equal(cancelledBefore + 1, _host.Scheduler.GetMetrics().Cancelled);
        Assert.Equal(0, _host.Scheduler.GetMetrics().KvBlocksUsed);
    }

    [Theory]
    [InlineData(Client.Python)]
    [InlineData(Client.Node)]
    public async Task Client_WithoutToken_GetsUnauthorized(Client client)
    {
        var events = await RunClientAsync(client, withToken: false, expectExit: 1, "generate", "--max-tokens", "1", "Hi");
        var error = Single(events, "error");
        Assert.Equal("unauthorized", error.GetProperty("code").GetString());
    }

    private static string Kind(JsonElement e) => e.GetProperty("event").GetString()!;

    private static JsonElement Single(List<JsonElement> events, string kind)
    {
        var matches = events.Where(e => Kind(e) == kind).ToList();
        Assert.True(matches.Count == 1, $"expected one '{kind}' event, got {matches.Count}: {string.Join("\n", events)}");
        return matches[0];
    }

    private Task<List<JsonElement>> RunClientAsync(Client client, params string[] args) =>
        RunClientAsync(client, withToken: true, expectExit: 0, args);

    /// <summary>Runs a client with --json against the server; returns its events (one JSON object per line).</summary>
    private async Task<List<JsonElement>> RunClientAsync(Client client, bool withToken, int expectExit, params string[] args)
    {
        string root = RepoRoot();
        var psi = client == Client.Python ? PythonClient(root) : NodeClient(root);
        psi.ArgumentList.Add("--port");
        psi.ArgumentList.Add(_host.EndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (withToken)
        {
            psi.ArgumentList.Add("--token-file");
            psi.ArgumentList.Add(_tokenFile);
        }
        psi.ArgumentList.Add("--json");
        foreach (string a in args) psi.ArgumentList.Add(a);
        string output = await ChildProcess.RunAsync(psi, ChildTimeout, expectExit: expectExit);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement.Clone()).ToList();
    }

    private static ProcessStartInfo PythonClient(string root)
    {
        // Debian's python3-msgpack installs for the system interpreter only (a pyenv python3 first on PATH lacks it).
        const string python = "/usr/bin/python3";
        if (!File.Exists(python))
            Assert.Fail($"{python} not found: the Python interop test needs Debian's python3 and python3-msgpack; run scripts/setup.sh");
        var check = Process.Start(new ProcessStartInfo(python, ["-c", "import msgpack"]) { RedirectStandardError = true, UseShellExecute = false })!;
        check.WaitForExit();
        if (check.ExitCode != 0)
            Assert.Fail($"{python} cannot import msgpack: install Debian's python3-msgpack by running scripts/setup.sh");
        var psi = new ProcessStartInfo(python);
        psi.ArgumentList.Add(Path.Combine(root, "clients", "python", "serving_client.py"));
        return psi;
    }

    private static ProcessStartInfo NodeClient(string root)
    {
        string dir = Path.Combine(root, "clients", "node");
        if (!Directory.Exists(Path.Combine(dir, "node_modules", "@msgpack", "msgpack")))
            Assert.Fail($"{dir}/node_modules/@msgpack/msgpack is missing: run scripts/setup.sh (npm install in clients/node)");
        var psi = new ProcessStartInfo("node") { WorkingDirectory = dir };
        psi.ArgumentList.Add(Path.Combine(dir, "client.mjs"));
        return psi;
    }

    /// <summary>
    /// The repository root: from this source file's compile-time path (the build machine is the test machine),
    /// else by walking up from the test binaries or the working directory to Serving.sln.
    /// </summary>
    internal static string RepoRoot([CallerFilePath] string sourceFile = "")
    {
        foreach (string? start in new[] { Path.GetDirectoryName(sourceFile), AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = start is null ? null : new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Serving.sln")) && Directory.Exists(Path.Combine(dir.FullName, "clients")))
                    return dir.FullName;
        }
        Assert.Fail("cannot find the repository root (Serving.sln with clients/) to run the example clients from");
        return "";
    }
}
