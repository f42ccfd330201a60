using System.Net.Sockets;
using System.Net;
using Microsoft.Extensions.Logging;
using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Scheduling;
using Serving.Host.Plugins;
using Serving.Server;

namespace Serving.Host.Serve;

/// <summary>What a server is built from (the serve command's options).</summary>
internal sealed record ServingHostOptions
{
    public required string ModelPath { get; init; }
    public IPEndPoint EndPoint { get; init; } = new(IPAddress.Loopback, 7411);
    public string? AuthToken { get; init; }
    public string? DeviceId { get; init; }
    public int Threads { get; init; }
    public ModelOptions Model { get; init; } = new();
    public SchedulerOptions Scheduler { get; init; } = new();
    /// <summary>Overrides for the RPC limits (message size, connections, timeouts); the endpoint and token above win.</summary>
    public RpcServerOptions Rpc { get; init; } = new();
    public string? PluginsFolder { get; init; }
    /// <summary>Most tokens one tokenize result or detokenize argument may hold; 0 = the context length.</summary>
    public int MaxRequestTokens { get; init; }
}

/// <summary>
/// A running server: device, model, scheduler and RPC endpoint, started together and stopped in order
/// (stop accepting → drain within the grace period → free the model → close the device). Used by the serve
/// command and, in process, by the tests.
/// </summary>
internal sealed class ServingHost : IAsyncDisposable
{
    private bool _stopped;

    private ServingHost(IAccelerator device, LoadedModel model, Scheduler scheduler, RpcServer server)
    {
        Device = device;
        Model = model;
        Scheduler = scheduler;
        Server = server;
    }

    public IAccelerator Device { get; }
    public LoadedModel Model { get; }
    public Scheduler Scheduler { get; }
    public RpcServer Server { get; }
    public IPEndPoint EndPoint => Server.LocalEndPoint;

    /// <summary>Opens the device, loads the model and starts listening. Nothing stays open if any step fails.</summary>
    public static ServingHost Start(ServingHostOptions options, ILoggerFactory? logs = null, IProgress<(long, long)>? loadProgress = null) =>
        Start(options, logs, loadProgress, wrapModel: null, wrapDecoder: null);

    /// <summary>
    /// Test seam: as <see cref="Start(ServingHostOptions, ILoggerFactory?, IProgress{ValueTuple{long, long}}?)"/>,
    /// but the scheduler drives <paramref name="wrapModel"/>(model) and streams through
    /// <paramref name="wrapDecoder"/>(decoder), so tests can inject engine and device faults behind the real RPC path.
    /// </summary>
    internal static ServingHost Start(ServingHostOptions options, ILoggerFactory? logs, IProgress<(long, long)>? loadProgress,
        Func<IStepModel, IStepModel>? wrapModel, Func<ITokenDecoder, ITokenDecoder>? wrapDecoder)
    {
        var host = Load(options, logs, loadProgress, wrapModel, wrapDecoder);
        host.Listen();
        return host;
    }

    /// <summary>
    /// Opens the device, loads the model and registers the RPC methods, but does not listen yet (<see cref="Listen"/>
    /// does): the serve command closes its loading bar in between, so the server's first log line cannot tear it.
    /// Nothing stays open if any step fails.
    /// </summary>
    public static ServingHost Load(ServingHostOptions options, ILoggerFactory? logs = null, IProgress<(long, long)>? loadProgress = null) =>
        Load(options, logs, loadProgress, wrapModel: null, wrapDecoder: null);

    private static ServingHost Load(ServingHostOptions options, ILoggerFactory? logs, IProgress<(long, long)>? loadProgress,
        Func<IStepModel, IStepModel>? wrapModel, Func<ITokenDecoder, ITokenDecoder>? wrapDecoder)
    {
        logs ??= Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
        var registry = DeviceRegistry.Discover(options.PluginsFolder);
        var device = registry.Open(options.DeviceId, new DeviceOptions(options.Threads));
        LoadedModel? model = null;
        Scheduler? scheduler = null;
        RpcServer? server = null;
        try
        {
            model = LoadedModel.Open(options.ModelPath, device, options.Model, loadProgress);
            IStepModel stepModel = wrapModel?.Invoke(model.Model) ?? model.Model;
            ITokenDecoder decoder = new TokenizerDecoder(model.Tokenizer);
            scheduler = new Scheduler(stepModel, wrapDecoder?.Invoke(decoder) ?? decoder, options.Scheduler);
            server = new RpcServer(options.Rpc with { EndPoint = options.EndPoint, AuthToken = options.AuthToken }, logs.CreateLogger("serving.rpc"));
            new ServingMethods(model, scheduler, registry, device, server, logs.CreateLogger("serving.methods"), options.MaxRequestTokens).Register();
            return new ServingHost(device, model, scheduler, server);
        }
        catch
        {
            Free(server, scheduler, model, device);
            throw;
        }
    }

    /// <summary>
    /// Starts accepting connections on the options' endpoint. When it cannot bind, everything is freed and
    /// <see cref="EndPointUnavailableException"/> says which endpoint and why.
    /// </summary>
    public void Listen()
    {
        try
        {
            Server.Start();
        }
        catch (SocketException e)
        {
            _stopped = true;
            Free(Server, Scheduler, Model, Device);
            throw new EndPointUnavailableException(Server.Options.EndPoint, e);
        }
    }

    /// <summary>Frees what a failed start had opened, in reverse order of opening.</summary>
    private static void Free(RpcServer? server, Scheduler? scheduler, LoadedModel? model, IAccelerator device)
    {
        server?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        scheduler?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        model?.Dispose();
        device.Dispose();
    }

    /// <summary>Stops accepting, lets in-flight requests finish within <paramref name="grace"/>, then cancels the rest and frees everything.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_stopped) return;
        _stopped = true;
        await Server.StopAsync(grace).ConfigureAwait(false);
        await Scheduler.DrainAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        await Scheduler.DisposeAsync().ConfigureAwait(false);
        // A lost device may refuse even to free its memory; the host is stopping, so that is not worth failing over.
        bool lost = Scheduler.FaultCause is ModelStepException { InnerException: AcceleratorException { DeviceLost: true } };
        try { Model.Dispose(); }
        catch (AcceleratorException) when (lost) { }
        try { Device.Dispose(); }
        catch (AcceleratorException) when (lost) { }
    }

    public async ValueTask DisposeAsync() => await StopAsync(TimeSpan.Zero).ConfigureAwait(false);

    /// <summary>
    /// Fails fast, before a model is loaded, when the endpoint cannot be bound (port in use, address not local).
    /// </summary>
    public static void CheckEndPoint(IPEndPoint endPoint)
    {
        try
        {
            using var probe = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(endPoint);
        }
        catch (SocketException e)
        {
            throw new EndPointUnavailableException(endPoint, e);
        }
    }
}

/// <summary>The server's endpoint cannot be bound; the message says which and why.</summary>
internal sealed class EndPointUnavailableException(IPEndPoint endPoint, SocketException inner)
    : Exception($"cannot listen on {endPoint}: {inner.Message}", inner);
