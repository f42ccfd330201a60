using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// The engine's table of weight formats: one row per format, the one place this layer adds one (its geometry is in
/// the contract's <see cref="DataTypes"/>, its kernels in each backend's table). Everything in the engine that asks
/// "is X a weight format", "what is it called", "quantize or dequantize a row of X" goes through here.
/// </summary>
public static class WeightFormats
{
    private static readonly WeightFormat[] Table =
    [
        new(DataType.F32, F32Codec.Quantize, F32Codec.Dequantize, 0),      // LLAMA_FTYPE_ALL_F32
        new(DataType.F16, F16Codec.Quantize, F16Codec.Dequantize, 1),      // LLAMA_FTYPE_MOSTLY_F16
        new(DataType.Q4_0, Q4_0Codec.Quantize, Q4_0Codec.Dequantize, 2),   // LLAMA_FTYPE_MOSTLY_Q4_0
        new(DataType.Q5_0, Q5_0Codec.Quantize, Q5_0Codec.Dequantize, 8),   // LLAMA_FTYPE_MOSTLY_Q5_0
        new(DataType.Q8_0, Q8_0Codec.Quantize, Q8_0Codec.Dequantize, 7),   // LLAMA_FTYPE_MOSTLY_Q8_0
        // LLAMA_FTYPE_MOSTLY_Q4_K_S: the nearest ftype to "every matrix q4_K".
        new(DataType.Q4_K, Q4_KCodec.Quantize, Q4_KCodec.Dequantize, 14),
        // LLAMA_FTYPE_MOSTLY_Q5_K_S: as Q4_K_S, q5_K everywhere (Q5_K_M = 17 adds q6_K tensors).
        new(DataType.Q5_K, Q5_KCodec.Quantize, Q5_KCodec.Dequantize, 16),
        new(DataType.Q6_K, Q6_KCodec.Quantize, Q6_KCodec.Dequantize, 18),  // LLAMA_FTYPE_MOSTLY_Q6_K
        new(DataType.BF16, BF16Codec.Quantize, BF16Codec.Dequantize, 32),  // LLAMA_FTYPE_MOSTLY_BF16
    ];

    private static readonly FrozenDictionary<DataType, WeightFormat> ByType = Table.ToFrozenDictionary(f => f.Type);

    /// <summary>Every weight format, in ggml id order.</summary>
    public static IReadOnlyList<WeightFormat> All => Table;

    /// <summary>
    /// The names of every weight format for messages, in ggml id order: "f32, f16, q4_0, q5_0, q8_0, q4_K, q5_K, q6_K, bf16".
    /// </summary>
    public static string Names { get; } = string.Join(", ", Table.Select(f => f.Name));

    /// <summary>The format of <paramref name="type"/>; false for types that are not weight formats (I32, unknown values).</summary>
    public static bool TryGet(DataType type, [NotNullWhen(true)] out WeightFormat? format) => ByType.TryGetValue(type, out format);

    /// <summary>The format of <paramref name="type"/>. Throws <see cref="ArgumentException"/> (listing the formats) when it is none.</summary>
    public static WeightFormat Get(DataType type)
        => TryGet(type, out WeightFormat? format)
            ? format
            : throw new ArgumentException($"{type.Name()} is not a weight format (use {Names})", nameof(type));

    /// <summary>The format named <paramref name="name"/> as llama.cpp prints it, ignoring case ("q4_k" finds q4_K).</summary>
    public static bool TryParse(string name, [NotNullWhen(true)] out WeightFormat? format)
    {
        format = Array.Find(Table, f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase));
        return format is not null;
    }
}
