using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Quantization;

namespace Serving.Engine.Models;

/// <summary>
/// Every op a Llama model runs, with the type and shape it runs it on (<see cref="OpQuery"/>), asked of the device
/// before anything is allocated: a model the device cannot run is refused at load with a
/// <see cref="ModelLoadException"/> naming the op, type and shape, never at the first step.
/// Legend in <see cref="LlamaConfig"/>.
/// </summary>
internal static class ModelRequirements
{
    /// <summary>One weight matrix the model multiplies by: GGUF name and its logical [rows, cols] (N × K).</summary>
    public readonly record struct MatrixSpec(string Name, int Rows, int Cols);

    /// <summary>The weight matrices of the model in <paramref name="file"/>, in load order (output only when not tied).</summary>
    public static List<MatrixSpec> Matrices(LlamaConfig c, GgufFile file)
    {
        int qDim = c.Heads * c.HeadDim, kvDim = c.KvHeads * c.HeadDim;
        var list = new List<MatrixSpec> { new("token_embd.weight", c.VocabSize, c.Dim) };
        if (file.FindTensor("output.weight") is not null) list.Add(new("output.weight", c.VocabSize, c.Dim));
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            list.Add(new(p + "attn_q.weight", qDim, c.Dim));
            list.Add(new(p + "attn_k.weight", kvDim, c.Dim));
            list.Add(new(p + "attn_v.weight", kvDim, c.Dim));
            list.Add(new(p + "attn_output.weight", c.Dim, qDim));
            list.Add(new(p + "ffn_gate.weight", c.FfnDim, c.Dim));
            list.Add(new(p + "ffn_up.weight", c.FfnDim, c.Dim));
            list.Add(new(p + "ffn_down.weight", c.Dim, c.FfnDim));
        }
        return list;
    }

    /// <summary>
    /// Checks every matrix's shape and type and asks <paramref name="device"/> for every op the model needs. Returns the
    /// KV cache type to use: <paramref name="kvType"/>, or the other of f16/f32 when the device runs only that one.
    /// Throws <see cref="ModelLoadException"/> for the first op, type and shape the device refuses.
    /// </summary>
    public static DataType Check(LlamaConfig c, GgufFile file, IAccelerator device, int contextLength, DataType kvType)
    {
        int qDim = c.Heads * c.HeadDim, kvDim = c.KvHeads * c.HeadDim;
        var asked = new HashSet<OpQuery>();
        void Require(string field, in OpQuery query)
        {
            if (!asked.Add(query)) return;
            OpSupport support = device.Supports(query);
            if (!support.Supported)
                throw new ModelLoadException(field, $"{device.Descriptor.Id} cannot run {query}: {support.Reason}");
        }

        bool tied = file.FindTensor("output.weight") is null;
        foreach (MatrixSpec m in Matrices(c, file))
        {
            GgufTensorInfo t = Tensor(file, m);
            bool embedding = m.Name == "token_embd.weight";
            if (embedding) Require(m.Name, new OpQuery(OpKind.Embed, t.Type, m.Rows, m.Cols));
            if (!embedding || tied) Require(m.Name, new OpQuery(OpKind.MatMul, t.Type, m.Rows, m.Cols)); // tied: the output head too
        }
        Require("RmsNorm", new OpQuery(OpKind.RmsNorm, DataType.F32, Cols: c.Dim));
        Require("Rope", new OpQuery(OpKind.Rope, DataType.F32, Cols: qDim, Heads: c.Heads, HeadDim: c.HeadDim));
        Require("Rope", new OpQuery(OpKind.Rope, DataType.F32, Cols: kvDim, Heads: c.KvHeads, HeadDim: c.HeadDim));
        Require("SwiGlu", new OpQuery(OpKind.SwiGlu, DataType.F32, Cols: c.FfnDim));
        Require("Add", new OpQuery(OpKind.Add, DataType.F32, Cols: c.Dim));
        if (file.FindTensor("blk.0.attn_q.bias") is not null) Require("blk.0.attn_q.bias", new OpQuery(OpKind.Add, DataType.F32, Cols: qDim));
        if (file.FindTensor("blk.0.attn_k.bias") is not null || file.FindTensor("blk.0.attn_v.bias") is not null)
            Require("blk.0.attn_k.bias", new OpQuery(OpKind.Add, DataType.F32, Cols: kvDim));
        Require("Gather", new OpQuery(OpKind.Gather, DataType.F32, Cols: c.Dim));
        Require("Argmax", new OpQuery(OpKind.Argmax, DataType.F32, Cols: c.VocabSize));

        OpQuery write = new(OpKind.KvWrite, kvType, contextLength, 0, 0, c.KvHeads, c.HeadDim);
        OpQuery attention = new(OpKind.Attention, kvType, contextLength, 0, c.Heads, c.KvHeads, c.HeadDim);
        DataType other = kvType == DataType.F16 ? DataType.F32 : DataType.F16;
        if (!(device.Supports(write).Supported && device.Supports(attention).Supported)
            && device.Supports(write with { Type = other }).Supported && device.Supports(attention with { Type = other }).Supported)
            kvType = other; // as KvCacheSpec.PreferredType allows: the device stores the other type
        Require("KV cache", write with { Type = kvType });
        Require("KV cache", attention with { Type = kvType });
        return kvType;
    }

    /// <summary>The tensor of <paramref name="m"/>, checked for shape and for a type the engine knows.</summary>
    public static GgufTensorInfo Tensor(GgufFile file, MatrixSpec m)
    {
        GgufTensorInfo t = file.FindTensor(m.Name) ?? throw new ModelLoadException(m.Name, "missing required tensor");
        if (t.Dims.Length != 2 || t.Dims[0] != m.Cols || t.Dims[1] != m.Rows)
            throw new ModelLoadException(m.Name, $"shape [{string.Join(", ", t.Dims)}], expected [{m.Cols}, {m.Rows}]");
        if (!t.IsImplementedType)
            throw new ModelLoadException(m.Name, $"tensor type {t.TypeName} is not supported yet (supported: {WeightFormats.Names})");
        return t;
    }
}
