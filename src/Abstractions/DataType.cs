namespace Serving.Abstractions;

/// <summary>
/// Element types of tensors. Values equal ggml's <c>ggml_type</c> ids so GGUF tensor types map one to one.
/// Quantized types are stored in blocks (GGUF layouts, bit-exact): Q8_0 = { f16 d; int8 qs[32] } (34 bytes),
/// Q4_0 = { f16 d; uint8 qs[16] } (18 bytes; low nibbles are elements 0..15, high nibbles 16..31, value = (q - 8)·d).
/// </summary>
public enum DataType
{
    /// <summary>32-bit IEEE float.</summary>
    F32 = 0,
    /// <summary>16-bit IEEE half.</summary>
    F16 = 1,
    /// <summary>4-bit blocks of 32 with one f16 scale.</summary>
    Q4_0 = 2,
    /// <summary>8-bit blocks of 32 with one f16 scale.</summary>
    Q8_0 = 8,
    /// <summary>32-bit signed integer (token ids, positions, slots, block tables).</summary>
    I32 = 26,
    /// <summary>bfloat16: the top 16 bits of an f32.</summary>
    BF16 = 30,
}

/// <summary>Sizes of <see cref="DataType"/> values.</summary>
public static class DataTypes
{
    /// <summary>Elements per block: 32 for quantized types, 1 otherwise.</summary>
    public static int BlockSize(this DataType type) => type switch
    {
        DataType.Q4_0 or DataType.Q8_0 => 32,
        _ => 1,
    };

    /// <summary>Bytes per block (per element for unquantized types).</summary>
    public static int BlockBytes(this DataType type) => type switch
    {
        DataType.F32 or DataType.I32 => 4,
        DataType.F16 or DataType.BF16 => 2,
        DataType.Q4_0 => 18,
        DataType.Q8_0 => 34,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown data type"),
    };

    /// <summary>True for block-quantized types.</summary>
    public static bool IsQuantized(this DataType type) => type.BlockSize() > 1;

    /// <summary>
    /// Bytes of a row of <paramref name="elements"/> elements. Throws when a quantized row is not a whole number
    /// of blocks.
    /// </summary>
    public static long RowBytes(this DataType type, long elements)
    {
        int bs = type.BlockSize();
        if (elements % bs != 0)
            throw new ArgumentException($"{type} rows must be a multiple of {bs} elements, got {elements}", nameof(elements));
        return elements / bs * type.BlockBytes();
    }

    /// <summary>Lower-case name as in GGUF tools ("q8_0", "bf16").</summary>
    public static string Name(this DataType type) => type.ToString().ToLowerInvariant();
}
