using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Models;
using Serving.Engine.Quantization;
using Serving.Engine.Synthetic;

namespace Serving.Host.Tests.Models;

/// <summary>
/// K-quant weights end to end: a model mixing Q6_K, Q5_K, Q4_K, Q5_0, Q4_0 and Q8_0 tensors the way llama-quantize
/// writes them (Q4_K_M: Q6_K for attn_v/ffn_down of some layers; Q4_0 files of Llama-3.2-1B: token_embd, tied to the
/// output, in Q6_K; Q4_K_S/Q5_K_M: Q5_K tensors; K-quant files of models whose rows are no multiple of 256: Q5_0
/// fallbacks) loads on the Cpu backend and matches the float64 reference; an unimplemented type is refused by name.
/// Dim 256 and FFN 512 make every row whole super-blocks of 256.
/// </summary>
[Collection("tiny")]
[Trait("Category", "Slow")]
public sealed class KQuantModelTests(TinyModelFixture fixture) : IDisposable
{
    private static readonly SyntheticShape Shape = new("kquant-test", Dim: 256, Layers: 2, Heads: 8, KvHeads: 2, FeedForward: 512, Vocab: 32000, Context: 512, RopeTheta: 500000f);
    private static readonly int[] Prompt = [1, 450, 4996, 17354, 1701, 432, 17204, 29889, 13];
    private readonly string _dir = Directory.CreateTempSubdirectory("serving-kquant-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The F32 synthetic model rewritten with each 2-D tensor in the type <paramref name="typeOf"/> picks.</summary>
    private string Mixed(Func<string, DataType> typeOf)
    {
        string source = Path.Combine(_dir, "f32.gguf");
        SyntheticModel.Create(Shape, DataType.F32, source, seed: 5);
        using var file = GgufFile.Open(source);
        var writer = new GgufWriter();
        foreach (string key in file.Metadata.Keys)
            writer.Add(key, file.Metadata[key]);
        foreach (var t in file.Tensors)
        {
            var values = MemoryMarshal.Cast<byte, float>(file.GetTensorBytes(t)).ToArray();
            DataType type = t.Dims.Length == 2 ? typeOf(t.Name) : DataType.F32;
            int rowLength = (int)t.Dims[0];
            long rowBytes = type.RowBytes(rowLength);
            var bytes = new byte[rowBytes * (values.Length / rowLength)];
            for (int r = 0; r < values.Length / rowLength; r++)
                Quantizer.Quantize(type, values.AsSpan(r * rowLength, rowLength), bytes.AsSpan((int)(r * rowBytes), (int)rowBytes));
            writer.AddTensor(t.Name, type, t.Dims, bytes);
        }
        string path = Path.Combine(_dir, $"mixed-{Guid.NewGuid():N}.gguf");
        writer.WriteTo(path);
        return path;
    }

    private static DataType Q4_K_M(string name) => name switch
    {
        "token_embd.weight" => DataType.Q6_K,
        _ when name.StartsWith("blk.0.", StringComparison.Ordinal) => DataType.Q4_K,
        "blk.1.attn_v.weight" or "blk.1.ffn_down.weight" => DataType.Q6_K,
        "blk.1.attn_q.weight" => DataType.Q8_0,
        "blk.1.attn_k.weight" => DataType.Q5_0,
        "blk.1.ffn_up.weight" or "blk.1.attn_output.weight" => DataType.Q5_K,
        _ => DataType.Q4_0,
    };

    [Fact]
    public void Mixed_K_quant_model_matches_the_float64_reference()
    {
        string path = Mixed(Q4_K_M);
        using var file = GgufFile.Open(path);
        Assert.Equal(DataType.Q6_K, file.GetTensor("token_embd.weight").Type);
        Assert.Equal(DataType.Q4_K, file.GetTensor("blk.0.ffn_up.weight").Type);
        Assert.Equal(DataType.Q6_K, file.GetTensor("blk.1.ffn_down.weight").Type);
        Assert.Equal(DataType.Q5_K, file.GetTensor("blk.1.ffn_up.weight").Type);
        Assert.Equal(DataType.Q5_0, file.GetTensor("blk.1.attn_k.weight").Type);
        using var model = LlamaModel.Load(file, fixture.Device, new ModelOptions { MaxBatchTokens = 16, MaxBatchSequences = 1, KvCacheTokens = 64 });
        var batch = new StepBatch(16, 1, model.MaxBlocksPerSequence);
        ForwardPassTests.AddSequence(batch, Prompt, 0, 0, model.KvBlockSize, allLogits: true);
        var logits = new float[Prompt.Length * model.VocabSize];
        model.Forward(batch, logits);
        var expected = ReferenceLlama.Forward(file, model.Config, Prompt, model.KvCacheType);
        double nmse = ReferenceLlama.NormalizedError(logits, expected, model.VocabSize);
        // As ForwardPassTests' quantized rows: the reference dequantizes the weights exactly; the device quantizes
        // activations to q8 blocks (~1e-4 relative per matmul).
        Assert.True(nmse < 5e-3, $"normalized MSE {nmse:E3}");
    }

    [Fact]
    public void Unimplemented_quant_type_is_refused_by_name()
    {
        // iq4_nl has Q4_0's geometry (18 bytes per 32), so relabelling a Q4_0 tensor keeps the file valid GGUF.
        string path = Mixed(name => name == "blk.0.attn_q.weight" ? DataType.Q4_0 : DataType.Q8_0);
        byte[] bytes = File.ReadAllBytes(path);
        byte[] name = Encoding.UTF8.GetBytes("blk.0.attn_q.weight");
        int at = bytes.AsSpan().IndexOf(name) + name.Length;      // then: u32 n_dims, i64 dims[n_dims], u32 type
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at)));
        int typeAt = at + 4 + 2 * 8;
        Assert.Equal((uint)DataType.Q4_0, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(typeAt)));
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(typeAt), 20); // GGML_TYPE_IQ4_NL
        File.WriteAllBytes(path, bytes);

        using var file = GgufFile.Open(path);
        var e = Assert.Throws<ModelLoadException>(() => LlamaModel.Load(file, fixture.Device, new ModelOptions { KvCacheTokens = 64 }));
        Assert.Equal("blk.0.attn_q.weight", e.Field);
        Assert.Contains("iq4_nl", e.Message);
        Assert.Contains("q4_K, q5_K, q6_K", e.Message);
    }
}
