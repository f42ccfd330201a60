using System.CommandLine;
using Serving.Host.Serve;

namespace Serving.Host.Commands;

/// <summary>Every top-level command, in help order.</summary>
internal static class CommandSet
{
    public static IEnumerable<Command> All() =>
    [
        DevicesCommand.Create(),
        ModelsCommand.Create(),
        GenerateCommand.Create(),
        TokenizeCommand.Create(),
        PerplexityCommand.Create(),
        ServeCommand.Create(),
        BenchCommand.Create(),
        TuneCommand.Create(),
    ];
}
