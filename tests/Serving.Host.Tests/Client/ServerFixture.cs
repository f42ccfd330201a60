using System.Net;
using Serving.Abstractions;
using Serving.Client;
using Serving.Engine.Synthetic;
using Serving.Host.Serve;

namespace Serving.Host.Tests.Client;

/// <summary>
/// One in-process server on the tiny synthetic q8_0 model, shared by every class of the "server" collection (a
/// model load per class would cost the 2-core CI more than the tests themselves). It requires a token, so the
/// auth tests need no second server; <see cref="ConnectAsync"/> authenticates.
/// </summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public const string Token = "client-tests-token";

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "serving-client-" + Guid.NewGuid().ToString("N"));
    private ServingHost? _host;

    internal ServingHost Host => _host ?? throw new InvalidOperationException("the server is not started");

    public int Port => Host.EndPoint.Port;

    /// <summary>A client on the shared server, authenticated.</summary>
    public Task<ServingClient> ConnectAsync() => ServingClient.ConnectAsync("127.0.0.1", Port, Token);

    /// <summary>Polls the server's metrics until <paramref name="done"/> holds (at most 10 s), returning the last snapshot.</summary>
    public async Task<IReadOnlyDictionary<string, double>> WaitForMetricsAsync(ServingClient client,
        Func<IReadOnlyDictionary<string, double>, bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var m = await client.MetricsAsync();
            if (done(m) || DateTime.UtcNow > deadline) return m;
            await Task.Delay(20);
        }
    }

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        string path = Path.Combine(_dir, "tiny-q8_0.gguf");
        SyntheticModel.Create("tiny", DataType.Q8_0, path, seed: 7);
        _host = ServingHost.Start(new ServingHostOptions
        {
            ModelPath = path,
            EndPoint = new IPEndPoint(IPAddress.Loopback, 0),
            AuthToken = Token,
            DeviceId = "cpu:0",
            PluginsFolder = Path.Combine(AppContext.BaseDirectory, "plugins"),
        });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_host is not null) await _host.StopAsync(TimeSpan.Zero);
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}

[CollectionDefinition("server")]
public sealed class ServerCollection : ICollectionFixture<ServerFixture>;
