using System.CommandLine;
using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary>A device opened from --device/--threads and a model loaded on it with a progress bar; disposes both.</summary>
internal sealed class ModelSession : IDisposable
{
    private ModelSession(IAccelerator device, LoadedModel loaded)
    {
        Device = device;
        Loaded = loaded;
    }

    public IAccelerator Device { get; }
    public LoadedModel Loaded { get; }

    public static ModelSession Open(ParseResult parse, Option<string?> model, Option<string?> device, Option<int> threads, Option<bool> noMmap, ModelOptions options) =>
        Open(parse, ModelOption.Resolve(parse.GetValue(model)), CommonOptions.Registry(parse), parse.GetValue(device), threads, noMmap, options);

    /// <summary>As above, for a model path and device id already resolved (null: the registry's default device).</summary>
    public static ModelSession Open(ParseResult parse, string path, Plugins.DeviceRegistry registry, string? deviceId, Option<int> threads, Option<bool> noMmap, ModelOptions options)
    {
        var accelerator = registry.Open(deviceId, new DeviceOptions(parse.GetValue(threads)));
        try
        {
            var loaded = ProgressBar.Run($"loading {Path.GetFileName(path)}", ProgressUnit.Bytes,
                bar => LoadedModel.Open(path, accelerator, options with { UseMmap = !parse.GetValue(noMmap) }, bar));
            Console.Error.WriteLine($"model: {loaded.Name} ({loaded.Model.Config.Architecture}, {loaded.Model.Config.Layers} layers, dim {loaded.Model.Config.Dim}, " +
                                    $"{Units.Bytes(loaded.Model.WeightBytes)} weights{(loaded.Model.WeightsMapped ? ", memory-mapped" : ", resident")}, {loaded.Model.KvCacheType.Name()} KV cache) on {accelerator.Descriptor.Id} ({accelerator.Descriptor.Name})");
            WarnIfContextBeyondTraining(loaded.Model);
            return new ModelSession(accelerator, loaded);
        }
        catch
        {
            accelerator.Dispose();
            throw;
        }
    }

    /// <summary>As llama.cpp does: a context longer than the model was trained on runs, but quality may suffer.</summary>
    public static void WarnIfContextBeyondTraining(LlamaModel model)
    {
        if (model.ContextLength > model.Config.ContextLength)
            Console.Error.WriteLine($"warning: context {model.ContextLength} exceeds the {model.Config.ContextLength} tokens the model was trained on");
    }

    public void Dispose()
    {
        Loaded.Dispose();
        Device.Dispose();
    }
}
