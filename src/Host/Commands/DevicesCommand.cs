using System.CommandLine;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary><c>devices</c>: every backend plugin found, its devices, and why a backend cannot run here.</summary>
internal static class DevicesCommand
{
    public static Command Create()
    {
        var command = new Command("devices", "List backend plugins, their devices, and why a backend cannot run here");
        command.SetAction(parse =>
        {
            var registry = CommonOptions.Registry(parse);
            Console.WriteLine($"plugins: {registry.Folder}");
            if (registry.FolderError is not null)
            {
                Console.Error.WriteLine($"error: {registry.FolderError}");
                return 1;
            }
            var table = new TextTable("backend", "device", "kind", "memory", "status", "name");
            foreach (var p in registry.Plugins)
            {
                if (!p.Usable)
                {
                    table.Add(p.Name, "-", "-", "-", $"unavailable: {p.Error}", "");
                    continue;
                }
                foreach (var d in p.Probe!.Devices)
                    table.Add(p.Name, d.Id, d.Kind.ToString(), Units.Bytes(d.TotalMemoryBytes), $"ready (score {p.Probe.Score})", d.Name);
            }
            if (registry.Plugins.Count == 0)
                Console.WriteLine("no backend plugins found");
            table.Write(Console.Out);
            return registry.Plugins.Any(p => p.Usable) ? 0 : 1;
        });
        return command;
    }
}
