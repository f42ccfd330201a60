using System.Buffers.Binary;
using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Models;

namespace Serving.Engine.Tests.Models;

/// <summary>
/// <c>--check-tensors</c> (<see cref="TensorCheck"/>): every weight type the engine computes, clean and with one NaN or
/// infinity planted — in a float element, or in a block's scale (or a K-quant's min scale) — is passed or refused naming
/// the tensor and where.
/// </summary>
public sealed class TensorCheckTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tensor-check-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<DataType, int, string> Poisons() => new()
    {
        // type, byte offset of the poisoned value in the tensor, what the error must say
        { DataType.F32, 300 * 4, "element 300 (row 1)" },
        { DataType.F16, 300 * 2, "element 300 (row 1)" },
        { DataType.BF16, 300 * 2, "element 300 (row 1)" },
        { DataType.Q8_0, 9 * DataType.Q8_0.BlockBytes(), "block 9 (elements 288–319, row 1)" },
        { DataType.Q4_0, 9 * DataType.Q4_0.BlockBytes(), "block 9" },
        { DataType.Q5_0, 9 * DataType.Q5_0.BlockBytes(), "block 9" },
        { DataType.Q4_K, DataType.Q4_K.BlockBytes() + 2, "block 1 (elements 256–511, row 1)" }, // dmin
        { DataType.Q5_K, DataType.Q5_K.BlockBytes(), "block 1" },
        { DataType.Q6_K, DataType.Q6_K.BlockBytes() + 208, "block 1" },
    };

    [Theory]
    [MemberData(nameof(Poisons))]
    public void Poisoned_tensor_is_refused_naming_it_and_where_the_clean_one_passes(DataType type, int offset, string where)
    {
        var rng = new Random(3);
        float[] values = Enumerable.Range(0, 2 * 256).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var clean = new GgufWriter();
        clean.AddTensor("w", type, [256, 2], values);
        string cleanPath = Path.Combine(_dir, "clean.gguf");
        clean.WriteTo(cleanPath);

        byte[] bytes;
        using (var file = GgufFile.Open(cleanPath))
        {
            TensorCheck.Scan(file); // nothing to find
            bytes = file.GetTensorBytes(file.Tensors[0]).ToArray();
        }
        bool nan = type is DataType.F32 or DataType.F16 or DataType.BF16 or DataType.Q8_0;
        switch (type)
        {
            case DataType.F32: BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(offset), float.NaN); break;
            case DataType.BF16: BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(offset), 0x7FC0); break;
            default: BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(offset), nan ? Half.NaN : Half.NegativeInfinity); break;
        }
        var poisoned = new GgufWriter();
        poisoned.AddTensor("blk.0.ffn_up.weight", type, [256, 2], bytes);
        string poisonedPath = Path.Combine(_dir, "poisoned.gguf");
        poisoned.WriteTo(poisonedPath);

        using var bad = GgufFile.Open(poisonedPath);
        var progress = new List<(long, long)>();
        var e = Assert.Throws<ModelLoadException>(() => TensorCheck.Scan(bad, new SyncProgress(progress)));
        Assert.Equal("blk.0.ffn_up.weight", e.Field);
        Assert.Contains(where, e.Message);
        Assert.Contains(nan ? "NaN" : "-Inf", e.Message);
    }

    [Fact]
    public void Progress_reaches_the_total_bytes()
    {
        var writer = new GgufWriter();
        writer.AddTensor("a", DataType.Q8_0, [256, 64], new float[256 * 64]);
        writer.AddTensor("b", DataType.F16, [256, 64], new float[256 * 64]);
        string path = Path.Combine(_dir, "ok.gguf");
        writer.WriteTo(path);
        using var file = GgufFile.Open(path);
        var progress = new List<(long Done, long Total)>();
        TensorCheck.Scan(file, new SyncProgress(progress));
        long total = file.Tensors.Sum(t => t.ByteSize);
        Assert.Equal((total, total), progress[^1]);
        Assert.True(progress.Select(p => p.Done).SequenceEqual(progress.Select(p => p.Done).Order()));
    }

    private sealed class SyncProgress(List<(long, long)> into) : IProgress<(long Done, long Total)>
    {
        public void Report((long Done, long Total) value) => into.Add(value);
    }
}
