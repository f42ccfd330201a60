using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Tokenizers;

namespace Serving.Engine.Models;

/// <summary>
/// A model file opened for serving: the mapped GGUF, its tokenizer, and the Llama model on a device. Owns all
/// three; on a load failure nothing stays open or allocated.
/// </summary>
public sealed class LoadedModel : IDisposable
{
    private LoadedModel(string path, GgufFile file, Tokenizer tokenizer, LlamaModel model)
    {
        Path = path;
        File = file;
        Tokenizer = tokenizer;
        Model = model;
        Name = file.Metadata.TryGetString("general.name", out string n) && n.Length > 0
            ? n
            : System.IO.Path.GetFileNameWithoutExtension(path);
    }

    /// <summary>Full path of the file.</summary>
    public string Path { get; }

    /// <summary>general.name, or the file name.</summary>
    public string Name { get; }

    /// <summary>The mapped file (weights may be read from it in place).</summary>
    public GgufFile File { get; }

    /// <summary>The tokenizer from the file's metadata.</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>The model on its device.</summary>
    public LlamaModel Model { get; }

    /// <summary>
    /// Opens <paramref name="path"/> on <paramref name="device"/>. Throws <see cref="GgufFormatException"/>,
    /// <see cref="TokenizerException"/> or <see cref="ModelLoadException"/> naming what is wrong.
    /// </summary>
    public static LoadedModel Open(string path, IAccelerator device, ModelOptions? options = null, IProgress<(long Done, long Total)>? progress = null)
    {
        var file = GgufFile.Open(path);
        try
        {
            var tokenizer = Tokenizer.FromGguf(file);
            var model = LlamaModel.Load(file, device, options, progress);
            if (tokenizer.VocabSize > model.VocabSize)
            {
                model.Dispose();
                throw new ModelLoadException("tokenizer.ggml.tokens", $"{tokenizer.VocabSize} tokens but the embedding has {model.VocabSize} rows");
            }
            return new LoadedModel(System.IO.Path.GetFullPath(path), file, tokenizer, model);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Frees the model's device memory, then unmaps the file.</summary>
    public void Dispose()
    {
        Model.Dispose();
        File.Dispose();
    }
}
