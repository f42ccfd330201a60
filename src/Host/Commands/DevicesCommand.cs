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
            var table = Tables.Create(["backend", "device", "kind", "memory", "name", "status"]);
            foreach (var p in registry.Plugins)
            {
                if (!p.Usable)
                {
                    table.AddCells(p.Name, "-", "-", "-", "-", $"unavailable: {p.Error}");
                    continue;
                }
                foreach (var d in p.Probe!.Devices)
                {
                    table.AddCells(p.Name, d.Id, d.Kind.ToString(), Units.Bytes(d.TotalMemoryBytes), d.Name, $"ready (score {p.Probe.Score})");
                    // What the backend adds about the device (memory heaps, subgroup size, features it uses), a line each.
                    foreach (string detail in d.Details)
                        table.AddCells("", "", "", "", "  " + detail, "");
                }
            }
            if (registry.Plugins.Count == 0)
                Console.WriteLine("no backend plugins found");
            else
                Terminal.Out.WriteTable(table);
            return registry.Plugins.Any(p => p.Usable) ? 0 : 1;
        });
        return command;
    }
}
