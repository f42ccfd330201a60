using System.CommandLine;
using Serving.Abstractions;
using Serving.Engine.Quantization;
using Serving.Engine.Synthetic;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary><c>models create</c>: writes a synthetic GGUF model of a real Llama shape, so there is always something to serve.</summary>
internal static class ModelsCommand
{
    public static Command Create()
    {
        var models = new Command("models", "Create synthetic models");
        var create = new Command("create", "Write a synthetic GGUF model of a real Llama shape with seeded random weights and a real 32000-token vocabulary");
        var shape = new Option<string>("--shape")
        {
            Description = $"Model shape: {string.Join(", ", SyntheticModel.Shapes.Keys)}",
            DefaultValueFactory = _ => "tiny",
        };
        var type = new Option<string>("--type")
        {
            Description = $"Weight type: {WeightFormats.Names} (K-quants: not for the tiny shape, whose dim 288 is no multiple of 256)",
            DefaultValueFactory = _ => "q8_0",
        };
        var output = new Option<string>("--output", "-o") { Description = "Output .gguf path", Required = true };
        var seed = new Option<int>("--seed") { Description = "Random seed (same seed, same file)", DefaultValueFactory = _ => 1 };
        create.Options.Add(shape);
        create.Options.Add(type);
        create.Options.Add(output);
        create.Options.Add(seed);
        create.SetAction(parse =>
        {
            string shapeName = parse.GetValue(shape)!;
            if (!SyntheticModel.Shapes.ContainsKey(shapeName))
                return CliErrors.Fail($"unknown shape '{shapeName}'; choose one of {string.Join(", ", SyntheticModel.Shapes.Keys)}");
            if (!WeightFormats.TryParse(parse.GetValue(type)!, out WeightFormat? format))
                return CliErrors.Fail($"unknown type '{parse.GetValue(type)}'; choose one of {WeightFormats.Names}");
            DataType dataType = format.Type;
            string path = Path.GetFullPath(parse.GetValue(output)!);
            var started = DateTime.UtcNow;
            try
            {
                ProgressBar.Run($"creating {shapeName} {dataType.Name()}", ProgressUnit.Bytes,
                    bar => SyntheticModel.Create(shapeName, dataType, path, parse.GetValue(seed), bar));
            }
            catch (ArgumentException e) // a shape the type cannot hold (e.g. tiny in q4_K): nothing was written
            {
                return CliErrors.Fail(e.Message.Split(" (Parameter", 2)[0]);
            }
            Console.WriteLine($"wrote {path} ({Units.Bytes(new FileInfo(path).Length)}) in {(DateTime.UtcNow - started).TotalSeconds:0.0} s");
            return 0;
        });
        models.Subcommands.Add(create);
        return models;
    }
}
