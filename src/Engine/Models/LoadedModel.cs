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
            CheckVocabulary(file, LlamaConfig.FromGguf(file), tokenizer);
            long bytes = file.Tensors.Sum(t => t.ByteSize);
            if (options?.CheckTensors == true)
            {
                // One bar for both passes: the scan is its first half, the load its second.
                TensorCheck.Scan(file, progress is null ? null : new Progress(p => progress.Report((p.Done, 2 * bytes))));
                progress = progress is null ? null : new Progress(p => progress.Report((bytes + p.Done, 2 * bytes)));
            }
            var model = LlamaModel.Load(file, device, options, progress);
            return new LoadedModel(System.IO.Path.GetFullPath(path), file, tokenizer, model);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The vocabulary sizes a file states must agree before anything is loaded: the tokenizer's token list, the embedding
    /// and output rows (the model's V), and <c>{arch}.vocab_size</c> when present. A tokenizer with more tokens than
    /// the embedding has rows would index past it; a stated vocab_size that differs from either means the metadata or
    /// the tensors were edited apart. Throws <see cref="ModelLoadException"/> naming the key and both counts.
    /// </summary>
    private static void CheckVocabulary(GgufFile file, LlamaConfig config, Tokenizer tokenizer)
    {
        string key = $"{config.Architecture}.vocab_size";
        if (file.Metadata.Contains(key))
        {
            if (!file.Metadata.TryGetUInt32(key, out uint stated))
                throw new ModelLoadException(key, "must be an unsigned 32-bit integer");
            if (stated != tokenizer.VocabSize)
                throw new ModelLoadException(key, $"states {stated} tokens but the tokenizer (tokenizer.ggml.tokens) has {tokenizer.VocabSize}: the metadata does not match the vocabulary");
            if (stated != config.VocabSize)
                throw new ModelLoadException(key, $"states {stated} tokens but token_embd.weight has {config.VocabSize} rows: the metadata does not match the weights");
        }
        if (tokenizer.VocabSize > config.VocabSize)
            throw new ModelLoadException("tokenizer.ggml.tokens", $"{tokenizer.VocabSize} tokens but the embedding has {config.VocabSize} rows");
    }

    private sealed class Progress(Action<(long Done, long Total)> report) : IProgress<(long Done, long Total)>
    {
        public void Report((long Done, long Total) value) => report(value);
    }

    /// <summary>Frees the model's device memory, then unmaps the file.</summary>
    public void Dispose()
    {
        Model.Dispose();
        File.Dispose();
    }
}
