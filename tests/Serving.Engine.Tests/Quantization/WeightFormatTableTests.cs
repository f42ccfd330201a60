using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Quantization;

namespace Serving.Engine.Tests.Quantization;

/// <summary>
/// The format tables (the contract's <see cref="DataTypes"/>, the engine's <see cref="WeightFormats"/>) against the
/// numbers ggml and llama.cpp use, typed here from ggml.c's type_traits and llama.h's llama_ftype.
/// </summary>
public class WeightFormatTableTests
{
    public static TheoryData<DataType, int, string, int, int> Ggml() => new()
    {
        { DataType.F32, 0, "f32", 1, 4 },
        { DataType.F16, 1, "f16", 1, 2 },
        { DataType.Q4_0, 2, "q4_0", 32, 18 },
        { DataType.Q5_0, 6, "q5_0", 32, 22 },
        { DataType.Q8_0, 8, "q8_0", 32, 34 },
        { DataType.Q4_K, 12, "q4_K", 256, 144 },
        { DataType.Q5_K, 13, "q5_K", 256, 176 },
        { DataType.Q6_K, 14, "q6_K", 256, 210 },
        { DataType.I32, 26, "i32", 1, 4 },
        { DataType.BF16, 30, "bf16", 1, 2 },
    };

    [Theory, MemberData(nameof(Ggml))]
    public void Geometry_is_ggml_s(DataType type, int id, string name, int blockSize, int blockBytes)
    {
        Assert.Equal(id, (int)type);
        Assert.Equal(new DataTypeInfo(type, name, blockSize, blockBytes), type.Info());
        Assert.True(GgmlTypes.TryGet(id, out var traits));
        Assert.Equal(new GgmlTypes.Traits(id, name, blockSize, blockBytes), traits);
        Assert.True(GgmlTypes.IsImplemented(id));
    }

    [Fact]
    public void Every_type_has_one_row_and_unknown_values_have_none()
    {
        Assert.Equal(Enum.GetValues<DataType>(), DataTypes.All.Select(i => i.Type).Order());
        Assert.False(((DataType)3).TryGetInfo(out _)); // q4_1: a ggml type, not one of ours
        Assert.False(((DataType)(-1)).TryGetInfo(out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => ((DataType)99).Info());
        Assert.Equal("99", ((DataType)99).Name()); // messages about bad input never throw
        Assert.False(GgmlTypes.IsImplemented(3));
    }

    [Fact]
    public void Weight_formats_are_every_type_but_I32_in_ggml_order()
    {
        Assert.Equal(Enum.GetValues<DataType>().Where(t => t != DataType.I32), WeightFormats.All.Select(f => f.Type));
        Assert.Equal("f32, f16, q4_0, q5_0, q8_0, q4_K, q5_K, q6_K, bf16", WeightFormats.Names);
        Assert.All(WeightFormats.All, f => Assert.Same(f.Type.Info(), f.Info));
        Assert.False(WeightFormats.TryGet(DataType.I32, out _));
        var e = Assert.Throws<ArgumentException>(() => WeightFormats.Get(DataType.I32));
        Assert.Contains("i32 is not a weight format", e.Message);
        Assert.Contains(WeightFormats.Names, e.Message);
    }

    [Theory]
    [InlineData(DataType.F32, 0u)]   // LLAMA_FTYPE_ALL_F32
    [InlineData(DataType.F16, 1u)]   // LLAMA_FTYPE_MOSTLY_F16
    [InlineData(DataType.Q4_0, 2u)]  // LLAMA_FTYPE_MOSTLY_Q4_0
    [InlineData(DataType.Q8_0, 7u)]  // LLAMA_FTYPE_MOSTLY_Q8_0
    [InlineData(DataType.Q5_0, 8u)]  // LLAMA_FTYPE_MOSTLY_Q5_0
    [InlineData(DataType.Q4_K, 14u)] // LLAMA_FTYPE_MOSTLY_Q4_K_S
    [InlineData(DataType.Q5_K, 16u)] // LLAMA_FTYPE_MOSTLY_Q5_K_S
    [InlineData(DataType.Q6_K, 18u)] // LLAMA_FTYPE_MOSTLY_Q6_K
    [InlineData(DataType.BF16, 32u)] // LLAMA_FTYPE_MOSTLY_BF16
    public void File_types_are_llama_cpp_s(DataType type, uint fileType)
        => Assert.Equal(fileType, WeightFormats.Get(type).LlamaFileType);

    [Theory]
    [InlineData("q4_K", DataType.Q4_K)]
    [InlineData("q4_k", DataType.Q4_K)]
    [InlineData("Q8_0", DataType.Q8_0)]
    [InlineData("bf16", DataType.BF16)]
    public void Names_parse_ignoring_case(string name, DataType type)
    {
        Assert.True(WeightFormats.TryParse(name, out var format));
        Assert.Equal(type, format.Type);
    }

    [Theory]
    [InlineData("i32")]
    [InlineData("q4_1")]
    [InlineData("")]
    [InlineData("q8")]
    public void Other_names_do_not_parse(string name) => Assert.False(WeightFormats.TryParse(name, out _));
}
