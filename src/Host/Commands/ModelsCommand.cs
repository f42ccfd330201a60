using System.CommandLine;
using Serving.Abstractions;
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
            Description = "Weight type: f32, f16, bf16, q8_0, q4_0, q5_0, q4_K, q5_K, q6_K (K-quants: not for the tiny shape, whose dim 288 is no multiple of 256)",
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
            if (!TryParseType(parse.GetValue(type)!, out DataType dataType))
                return CliErrors.Fail($"unknown type '{parse.GetValue(type)}'; choose one of f32, f16, bf16, q8_0, q4_0, q5_0, q4_K, q5_K, q6_K");
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

    private static bool TryParseType(string text, out DataType type)
    {
        type = text.ToLowerInvariant() switch
        {
            "f32" => DataType.F32,
            "f16" => DataType.F16,
            "bf16" => DataType.BF16,
            "q8_0" => DataType.Q8_0,
            "q4_0" => DataType.Q4_0,
            "q5_0" => DataType.Q5_0,
            "q4_k" => DataType.Q4_K,
            "q5_k" => DataType.Q5_K,
            "q6_k" => DataType.Q6_K,
            _ => (DataType)(-1),
        };
        return (int)type >= 0;
    }
}
