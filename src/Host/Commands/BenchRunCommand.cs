using System.CommandLine;
using Serving.Abstractions;
using Serving.Engine.Quantization;
using Serving.Engine.Synthetic;
using Serving.Host.Benchmarks.Suite;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary>
/// <c>bench</c> (or <c>bench run</c>): the suite over devices (docs/bench.md) — the same workload on each device, mean ±
/// standard deviation over repetitions, floors from measured peaks, energy from real meters; a table on the terminal
/// and results.json, results.md and report.html in <c>--out</c>.
/// </summary>
internal sealed class BenchRunCommand
{
    private readonly Option<string> _devices = new("--devices") { Description = "Devices to run: all, or a comma-separated list (cpu:0,vulkan:0)", DefaultValueFactory = _ => "all" };
    private readonly Option<string?> _model = ModelOption.Create();
    private readonly Option<string?> _shape = new("--shape") { Description = $"Synthetic model shape instead of --model ({string.Join(", ", SyntheticModel.Shapes.Keys)}), created on first use" };
    private readonly Option<string> _type = new("--type") { Description = $"Weight type of the --shape model ({WeightFormats.Names})", DefaultValueFactory = _ => "q8_0" };
    private readonly Option<string> _batch = new("--batch", "-b") { Description = "Comma-separated decode batch sizes", DefaultValueFactory = _ => "1,4,16" };
    private readonly Option<int> _prompt = new("--prompt", "-p") { Description = "Prompt tokens of the prompt-processing test (ppN)", DefaultValueFactory = _ => 512 };
    private readonly Option<int> _gen = new("--gen", "-n") { Description = "Tokens each sequence generates in the decode tests (tgN)", DefaultValueFactory = _ => 128 };
    private readonly Option<int> _repetitions = new("--repetitions", "-r") { Description = "Timed repetitions of every test", DefaultValueFactory = _ => 5 };
    private readonly Option<string> _out = new("--out", "-o") { Description = "Folder for results.json, results.md and report.html", DefaultValueFactory = _ => "results" };
    private readonly Option<int> _bandwidthMib = new("--bandwidth-mib") { Description = "Buffer size of the bandwidth probe, MiB", DefaultValueFactory = _ => 256 };
    private readonly Option<int> _profileSteps = new("--profile-steps") { Description = "Decode steps timed per op for the op profile (0: none)", DefaultValueFactory = _ => 4 };
    private readonly Option<string?> _powerCmd = new("--power-cmd") { Description = "External meter: a command printing watts ('12.5 W') or cumulative energy ('1234 J'), run once per reading" };
    private readonly Option<string?> _powerFile = new("--power-file") { Description = "External meter: a file whose last line is watts or cumulative joules, as for --power-cmd" };
    private readonly Option<int> _powerInterval = new("--power-interval-ms") { Description = "How often the external meter is read", DefaultValueFactory = _ => 500 };
    private readonly Option<int> _threads = CommonOptions.Threads();
    private readonly Option<string> _kvType = CommonOptions.KvType();

    /// <summary>The <c>bench run</c> subcommand.</summary>
    public static Command CreateRun()
    {
        var command = new Command("run", "Run the benchmark suite on each device (the same as plain 'bench')");
        new BenchRunCommand().Attach(command);
        return command;
    }

    /// <summary>Adds the suite's options and action to <paramref name="command"/> (plain <c>bench</c> and <c>bench run</c>).</summary>
    public void Attach(Command command)
    {
        foreach (var o in new Option[] { _devices, _model, _shape, _type, _batch, _prompt, _gen, _repetitions, _out, _bandwidthMib, _profileSteps, _powerCmd, _powerFile, _powerInterval, _threads, _kvType })
            command.Options.Add(o);
        command.SetAction(Run);
    }

    private int Run(ParseResult parse)
    {
        int[] batches;
        try
        {
            batches = parse.GetValue(_batch)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).Distinct().Order().ToArray();
        }
        catch (FormatException)
        {
            return CliErrors.Fail($"--batch '{parse.GetValue(_batch)}' is not a comma-separated list of integers");
        }
        if (batches.Length == 0 || batches.Any(b => b is < 1 or > 256)) return CliErrors.Fail("--batch sizes must be in [1, 256]");
        int prompt = parse.GetValue(_prompt), gen = parse.GetValue(_gen), reps = parse.GetValue(_repetitions);
        if (prompt is < 1 or > 8192) return CliErrors.Fail($"--prompt {prompt} out of range [1, 8192]");
        if (gen is < 1 or > 8192) return CliErrors.Fail($"--gen {gen} out of range [1, 8192]");
        if (reps is < 1 or > 1000) return CliErrors.Fail($"--repetitions {reps} out of range [1, 1000]");
        int mib = parse.GetValue(_bandwidthMib);
        if (mib is < 1 or > 16384) return CliErrors.Fail($"--bandwidth-mib {mib} out of range [1, 16384]");
        int interval = parse.GetValue(_powerInterval);
        if (interval is < 10 or > 60_000) return CliErrors.Fail($"--power-interval-ms {interval} out of range [10, 60000]");
        if (parse.GetValue(_powerCmd) is not null && parse.GetValue(_powerFile) is not null) return CliErrors.Fail("give --power-cmd or --power-file, not both");
        int profileSteps = parse.GetValue(_profileSteps);
        if (profileSteps is < 0 or > 1000) return CliErrors.Fail($"--profile-steps {profileSteps} out of range [0, 1000]");

        string? shape = parse.GetValue(_shape);
        string path;
        if (shape is not null)
        {
            if (parse.GetValue(_model) is not null) return CliErrors.Fail("give --model or --shape, not both");
            if (!SyntheticModel.Shapes.ContainsKey(shape)) return CliErrors.Fail($"unknown shape '{shape}'; choose one of {string.Join(", ", SyntheticModel.Shapes.Keys)}");
            if (!WeightFormats.TryParse(parse.GetValue(_type)!, out WeightFormat? format)) return CliErrors.Fail($"unknown type '{parse.GetValue(_type)}'; choose one of {WeightFormats.Names}");
            try
            {
                path = ModelOption.Synthetic(shape, format.Type);
            }
            catch (ArgumentException e)
            {
                return CliErrors.Fail(e.Message.Split(" (Parameter", 2)[0]);
            }
        }
        else
        {
            path = ModelOption.Resolve(parse.GetValue(_model));
            if (parse.GetValue(_model) is null) shape = "tiny";
        }

        var registry = CommonOptions.Registry(parse);
        string devicesText = parse.GetValue(_devices)!;
        List<string> devices = devicesText.Trim().Equals("all", StringComparison.OrdinalIgnoreCase)
            ? [.. registry.Devices.Select(d => d.Device.Id)]
            : [.. devicesText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct()];
        if (devices.Count == 0) return CliErrors.Fail($"no devices to run ('{devicesText}'); see 'devices'");

        var options = new SuiteOptions
        {
            Devices = devices,
            ModelPath = path,
            Shape = shape,
            Prompt = prompt,
            Gen = gen,
            Batches = batches,
            Repetitions = reps,
            KvType = parse.GetValue(_kvType)!,
            Threads = parse.GetValue(_threads),
            BandwidthBytes = (long)mib << 20,
            ProfileSteps = profileSteps,
            PowerCommand = parse.GetValue(_powerCmd),
            PowerFile = parse.GetValue(_powerFile),
            PowerInterval = TimeSpan.FromMilliseconds(interval),
            CommandLine = CommandLine(),
        };
        SuiteResults results;
        try
        {
            results = ProgressBar.Run("bench", ProgressUnit.Items, bar =>
            {
                long done = 0, total = 0;
                var suite = new BenchSuite(options, registry, status => bar.Status(status), () => bar.Report((++done, total)));
                total = (long)suite.UnitsPerDevice * devices.Count;
                bar.Report((0, total));
                return suite.Run();
            });
        }
        catch (InvalidOperationException e) when (options.PowerCommand is not null || options.PowerFile is not null)
        {
            return CliErrors.Fail($"external meter: {e.Message}");
        }
        string dir = Path.GetFullPath(parse.GetValue(_out)!);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "results.json"), results.ToJson());
        File.WriteAllText(Path.Combine(dir, "results.md"), SuiteText.Markdown(results));
        File.WriteAllText(Path.Combine(dir, "report.html"), ReportHtml.Render(results));
        foreach (string line in SuiteText.DeviceLines(results)) Console.WriteLine(line);
        Terminal.Out.WriteTable(SuiteText.Table(results));
        Console.WriteLine($"wrote {Path.Combine(dir, "results.json")}, results.md, report.html");
        return results.Devices.All(d => d.Error is not null) ? 1 : 0;
    }

    /// <summary>The command line as a shell would take it back ("Serving.Host bench --devices …"; arguments quoted where needed).</summary>
    private static string CommandLine()
    {
        static string Quote(string a) => a.Length > 0 && a.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:,=@+".Contains(c)) ? a : "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
        string[] args = Environment.GetCommandLineArgs();
        return string.Join(' ', [Path.GetFileNameWithoutExtension(args[0]), .. args.Skip(1).Select(Quote)]);
    }
}
