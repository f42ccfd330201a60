using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using Serving.Abstractions;
using Serving.Backends.Cpu.Kernels.Formats;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>One weight format's kernels on this backend (a row of <see cref="WeightFormats"/>).</summary>
internal sealed unsafe class WeightFormat
{
    /// <summary>Pairs a format with its kernels.</summary>
    public WeightFormat(DataType type, delegate*<byte*, int, float*, void> decodeRow, MatMulEntry matMul)
    {
        Type = type;
        DecodeRow = decodeRow;
        MatMul = matMul;
    }

    /// <summary>The format.</summary>
    public DataType Type { get; }

    /// <summary>Embed's row decoder: (row, k elements — whole blocks —, f32 destination [k]).</summary>
    public delegate*<byte*, int, float*, void> DecodeRow { get; }

    /// <summary>MatMul's entry into the driver, specialized for the format's block type.</summary>
    public MatMulEntry MatMul { get; }
}

/// <summary>
/// The Cpu backend's table of weight formats: each format's block type (Kernels/Formats, one format per file) with
/// the Embed row decoder and the MatMul kernels that read it. The one place this backend adds a format; "is X a weight
/// type here", "decode a row of X" and "multiply by X" all come through it.
/// </summary>
internal static unsafe class WeightFormats
{
    private static readonly WeightFormat[] Table =
    [
        new(DataType.F32, &F32Row.DecodeRow, MatMulDriver.Float<F32Row>()),
        new(DataType.F16, &F16Row.DecodeRow, MatMulDriver.Float<F16Row>()),
        new(DataType.BF16, &BF16Row.DecodeRow, MatMulDriver.Float<BF16Row>()),
        new(DataType.Q8_0, &Q8_0Block.DecodeRow, MatMulDriver.Blocks<Q8_0Block>()),
        new(DataType.Q4_0, &Q4_0Block.DecodeRow, MatMulDriver.Blocks<Q4_0Block>()),
        new(DataType.Q5_0, &Q5_0Block.DecodeRow, MatMulDriver.Blocks<Q5_0Block>()),
        new(DataType.Q4_K, &Q4_KBlock.DecodeRow, MatMulDriver.SuperBlocks<KQuantMinDot<Q4_KBlock>>()),
        new(DataType.Q5_K, &Q5_KBlock.DecodeRow, MatMulDriver.SuperBlocks<KQuantMinDot<Q5_KBlock>>()),
        new(DataType.Q6_K, &Q6_KBlock.DecodeRow, MatMulDriver.SuperBlocks<Q6_KDot>()),
    ];

    /// <summary>
    /// F16 MatMul for a weight without ∞ or NaN (<see cref="CpuWeight.HalvesFinite"/>): the same variants and the same
    /// bits as the F16 row's entry, with the cheaper exact widening of <see cref="F16FiniteRow"/>.
    /// </summary>
    public static readonly MatMulEntry F16FiniteMatMul = MatMulDriver.Float<F16FiniteRow>();

    private static readonly FrozenDictionary<DataType, WeightFormat> ByType = Table.ToFrozenDictionary(f => f.Type);

    /// <summary>The weight types MatMul and Embed accept, in table order.</summary>
    public static readonly DataType[] Types = [.. Table.Select(f => f.Type)];

    /// <summary>The weight type names for messages ("f32, f16, bf16, …").</summary>
    public static readonly string Names = string.Join(", ", Table.Select(f => f.Type.Name()));

    /// <summary>The kernels of <paramref name="type"/>; false when it is not a weight format of this backend.</summary>
    public static bool TryGet(DataType type, [NotNullWhen(true)] out WeightFormat? format) => ByType.TryGetValue(type, out format);
}
