using System.CommandLine;
using Serving.Engine.Gguf;
using Serving.Engine.Models;
using Serving.Engine.Tokenizers;
using Serving.Host.Cli;
using Serving.Host.Commands;
using Serving.Host.Plugins;
using Serving.Host.Serve;

namespace Serving.Host;

/// <summary>The composition root: one sub-command per user task, each in Commands/.</summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        var root = new RootCommand("Serving: an accelerator-agnostic LLM inference server (GGUF, Llama family).");
        root.Options.Add(CommonOptions.Plugins);
        foreach (var command in CommandSet.All())
            root.Subcommands.Add(command);
        try
        {
            return root.Parse(args).Invoke(new InvocationConfiguration
            {
                EnableDefaultExceptionHandler = false,
                ProcessTerminationTimeout = null, // serve drains on SIGTERM itself; never force-exit mid-drain
            });
        }
        catch (Exception e) when (IsUserError(e))
        {
            // Expected failures (a bad file, a missing device) get one clear line, never a stack trace.
            return CliErrors.Fail(e is ArgumentException { ParamName: { } name } a
                ? a.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal)
                : e.Message);
        }
    }

    private static bool IsUserError(Exception e) => e is GgufFormatException or ModelLoadException or TokenizerException
        or DeviceNotFoundException or IOException or UnauthorizedAccessException or EndPointUnavailableException
        or ArgumentException or Abstractions.AcceleratorException or OperationCanceledException;
}
