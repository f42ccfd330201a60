using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Models;
using Serving.Engine.Synthetic;
using Serving.Engine.Tuning;

namespace Serving.Engine.Tests.Tuning;

public sealed class ModelShapeTests
{
    internal static ModelShape Shape(DataType type = DataType.Q8_0)
    {
        var config = new LlamaConfig
        {
            Architecture = "llama", Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 16, FfnDim = 128, VocabSize = 100,
            ContextLength = 256, RmsEps = 1e-5f, RopeTheta = 10000, RopeDim = 16, RopeStyle = RopeStyle.Normal,
        };
        return ModelShape.Create(config, [new MatrixShape(type, 128, 64, 4, "ffn_gate, ffn_up"), new MatrixShape(type, 100, 64, 1, "output")]);
    }

    [Fact]
    public void ReadsTheRealShapesOfASyntheticModel()
    {
        string path = Path.Combine(Path.GetTempPath(), $"shape-{Guid.NewGuid():N}.gguf");
        try
        {
            SyntheticModel.Create("tiny", DataType.Q8_0, path, seed: 1);
            using var file = GgufFile.Open(path);
            var shape = ModelShape.FromGguf(file);
            // tiny: D 288, F 768, 6 layers, 6 heads of 48, tied 32000-token output.
            Assert.Contains(shape.Matrices, m => m is { Rows: 768, Cols: 288, PerStep: 12, Role: "ffn_gate, ffn_up" });
            Assert.Contains(shape.Matrices, m => m is { Rows: 288, Cols: 288, PerStep: 24 }); // q, k, v, o: no GQA in tiny
            Assert.Contains(shape.Matrices, m => m is { Rows: 32000, Cols: 288, PerStep: 1, Role: "output" });
            Assert.Equal(shape.Matrices.Sum(m => m.Bytes * m.PerStep), shape.WeightBytesPerStep);
            Assert.Equal(DataType.Q8_0, shape.DominantType);
            Assert.Equal(34.0 / 32, shape.BytesPerWeight, 9); // q8_0: 34 bytes per 32 weights
            Assert.StartsWith("llama d288 l6 h6 kv6 dh48 f768 v32000 tied", shape.Key);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void KeyChangesWithTypesAndShapes()
    {
        Assert.NotEqual(Shape(DataType.Q8_0).Key, Shape(DataType.Q4_0).Key);
        Assert.Equal(Shape().Key, Shape().Key);
    }
}
