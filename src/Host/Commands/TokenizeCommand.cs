using System.CommandLine;
using System.Text.Json;
using Serving.Engine.Gguf;
using Serving.Engine.Tokenizers;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary>
/// <c>tokenize --json</c>: a JSON array of strings on stdin → a JSON array of token-id arrays (no BOS), as
/// llama.cpp's tokenizer tests. Needs only the tokenizer metadata, so vocabulary-only GGUF files work too.
/// </summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var command = new Command("tokenize", "Tokenize text with a model's tokenizer");
        var model = ModelOption.Create();
        var json = new Option<bool>("--json") { Description = "Read a JSON array of strings on stdin; write a JSON array of id arrays (no BOS)" };
        var text = new Option<string?>("--text") { Description = "Tokenize this text and print the ids and pieces" };
        var bos = new Option<bool>("--bos") { Description = "Add BOS as the model would for a prompt (--text only)" };
        command.Options.Add(model);
        command.Options.Add(json);
        command.Options.Add(text);
        command.Options.Add(bos);
        command.SetAction(parse =>
        {
            if (parse.GetValue(json) == (parse.GetValue(text) is not null))
                return CliErrors.Fail("give exactly one of --json (stdin) or --text");
            using var file = GgufFile.Open(ModelOption.Resolve(parse.GetValue(model)));
            var tokenizer = Tokenizer.FromGguf(file);
            if (parse.GetValue(text) is { } t)
            {
                foreach (int id in tokenizer.Encode(t, parse.GetValue(bos)))
                    Console.WriteLine($"{id,6}  {JsonSerializer.Serialize(tokenizer.TokenToPiece(id))}");
                return 0;
            }
            string[]? inputs;
            try
            {
                inputs = JsonSerializer.Deserialize<string[]>(Console.In.ReadToEnd());
            }
            catch (JsonException e)
            {
                return CliErrors.Fail($"stdin is not a JSON array of strings: {e.Message}");
            }
            if (inputs is null || inputs.Any(s => s is null))
                return CliErrors.Fail("stdin is not a JSON array of strings");
            var ids = inputs.Select(s => tokenizer.Encode(s, addBos: false)).ToArray();
            Console.WriteLine(JsonSerializer.Serialize(ids));
            return 0;
        });
        return command;
    }
}
