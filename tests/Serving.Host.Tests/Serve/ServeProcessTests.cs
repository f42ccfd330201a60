using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Serving.Abstractions;
using Serving.Client;
using Serving.Engine.Synthetic;

namespace Serving.Host.Tests.Serve;

/// <summary>
/// <c>serve</c> as a user runs it: a separate process on the tiny model, stopped by real signals. The first SIGTERM
/// stops accepting and drains the in-flight request to its end, then exits 0; a second signal during the drain
/// exits at once with 128 + the signal number.
/// </summary>
[Trait("Category", "Slow")]
public sealed partial class ServeProcessTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "serving-serve-" + Guid.NewGuid().ToString("N"));
    private readonly string _model;

    public ServeProcessTests()
    {
        Directory.CreateDirectory(_dir);
        _model = Path.Combine(_dir, "tiny-q8_0.gguf");
        SyntheticModel.Create("tiny", DataType.Q8_0, _model, seed: 5);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task Sigterm_drains_the_in_flight_stream_to_its_end_and_exits_zero()
    {
        await using var server = await ServerProcess.StartAsync(_model, "--grace", "60");
        await using var client = await ServingClient.ConnectAsync("127.0.0.1", server.Port);

        int tokens = 0;
        GenerateResult? final = null;
        await foreach (var e in client.GenerateStreamAsync(new GenerateOptions { Prompt = "Once upon a time", MaxTokens = 200, Temperature = 0 }))
        {
            if (e.IsFinal) { final = e.Result; break; }
            if (e.TokenId >= 0 && ++tokens == 1) server.Signal("TERM"); // mid-stream: the request is in flight
        }

        Assert.NotNull(final);
        Assert.NotEqual("cancelled", final.FinishReason); // drained, not cut off
        Assert.Equal(final.Usage.CompletionTokens, final.TokenIds.Count);
        Assert.Equal(0, await server.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("shutting down", server.Stderr);
        Assert.Contains("stopped: 1 completed, 0 cancelled, 0 failed", server.Stderr);
    }

    [Fact]
    public async Task A_second_signal_during_the_drain_exits_at_once_with_128_plus_the_signal()
    {
        // A context 8× the model's training length, so that one request can run long: 16 000 greedy steps (no early end
        // on this seeded model) are tens of seconds even on a fast, quiet machine (2000 took ~4 s at 470 tokens/s), so it
        // is still draining when the second signal comes a few milliseconds after the first.
        await using var server = await ServerProcess.StartAsync(_model, "--grace", "600", "--ctx", "16384", "--kv-tokens", "16384");
        await using var client = await ServingClient.ConnectAsync("127.0.0.1", server.Port);

        var stream = client.GenerateStreamAsync(new GenerateOptions { Prompt = "Once upon a time", MaxTokens = 16_000, Temperature = 0 })
            .GetAsyncEnumerator();
        Assert.True(await stream.MoveNextAsync());
        // Keep reading, so the client never gives the request up for an overflowing buffer (which would cancel it on
        // the server and let the drain end by itself).
        var reader = Task.Run(async () =>
        {
            try { while (await stream.MoveNextAsync()) { } }
            catch (Exception e) when (e is not OutOfMemoryException) { } // the server is gone
        });
        server.Signal("TERM");
        await server.WaitForStderrAsync("shutting down", TimeSpan.FromSeconds(30));
        // The second signal is TERM again, not INT: a process started in the background by a shell without job control
        // (as CI may start the tests) inherits SIGINT ignored, and .NET leaves an ignored SIGINT ignored.
        server.Signal("TERM");

        int exit = await server.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(exit == 128 + 15, $"exit {exit}; the server's stderr:\n{server.Stderr}");
        Assert.Contains("second interrupt", server.Stderr);
        Assert.DoesNotContain("stopped:", server.Stderr); // it did not wait for the drain
        await reader;
        try { await stream.DisposeAsync(); } catch (Exception e) when (e is not OutOfMemoryException) { }
    }

    /// <summary>The host run as <c>dotnet Serving.Host.dll serve</c> with stdout/stderr captured.</summary>
    private sealed partial class ServerProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _stderr = new();
        private readonly TaskCompletionSource<int> _port = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private ServerProcess(Process process) => _process = process;

        public int Port { get; private set; }

        public string Stderr
        {
            get { lock (_stderr) return _stderr.ToString(); }
        }

        public static async Task<ServerProcess> StartAsync(string model, params string[] extra)
        {
            string baseDir = AppContext.BaseDirectory;
            var psi = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
                UseShellExecute = false,
            };
            foreach (string a in new[] { Path.Combine(baseDir, "Serving.Host.dll"), "serve", "--model", model, "--port", "0",
                         "--device", "cpu:0", "--plugins", Path.Combine(baseDir, "plugins") }.Concat(extra))
                psi.ArgumentList.Add(a);
            var server = new ServerProcess(Process.Start(psi) ?? throw new InvalidOperationException("could not start the host"));
            server._process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is { } line && ListeningLine().Match(line) is { Success: true } m)
                    server._port.TrySetResult(int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            };
            server._process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (server._stderr) server._stderr.AppendLine(e.Data);
            };
            server._process.BeginOutputReadLine();
            server._process.BeginErrorReadLine();
            var exited = server._process.WaitForExitAsync();
            var first = await Task.WhenAny(server._port.Task, exited, Task.Delay(TimeSpan.FromSeconds(120)));
            if (first != server._port.Task)
            {
                await server.DisposeAsync();
                throw new InvalidOperationException($"serve did not start listening; stderr:\n{server.Stderr}");
            }
            server.Port = await server._port.Task;
            return server;
        }

        /// <summary>Sends a signal (TERM, INT) to the server process with kill(1).</summary>
        public void Signal(string name)
        {
            using var kill = Process.Start(new ProcessStartInfo("kill", ["-" + name, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])
                { UseShellExecute = false })!;
            kill.WaitForExit();
            Assert.Equal(0, kill.ExitCode);
        }

        public async Task WaitForStderrAsync(string text, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (!Stderr.Contains(text, StringComparison.Ordinal))
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"'{text}' not seen on stderr:\n{Stderr}");
                await Task.Delay(10);
            }
        }

        public async Task<int> WaitForExitAsync(TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            await _process.WaitForExitAsync(cts.Token);
            _process.WaitForExit(); // flushes the redirected streams
            return _process.ExitCode;
        }

        public ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
            }
            _process.Dispose();
            return ValueTask.CompletedTask;
        }

        [GeneratedRegex(@"^listening on [^ ]*:(\d+) ")]
        private static partial Regex ListeningLine();
    }
}
