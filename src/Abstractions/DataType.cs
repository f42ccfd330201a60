namespace Serving.Abstractions;

/// <summary>
/// Element types of tensors. Values equal ggml's <c>ggml_type</c> ids so GGUF tensor types map one to one.
/// Quantized types are stored in blocks (GGUF layouts, bit-exact): Q8_0 = { f16 d; int8 qs[32] } (34 bytes),
/// Q4_0 = { f16 d; uint8 qs[16] } (18 bytes; low nibbles are elements 0..15, high nibbles 16..31, value = (q - 8)·d).
/// Q5_0 = { f16 d; uint8 qh[4]; uint8 qs[16] } (22 bytes): qh is one little-endian uint32 of fifth bits; element j &lt; 16
/// is the low nibble of qs[j] with bit j of qh above it, element j + 16 the high nibble of qs[j] with bit j + 16 above
/// it; value = (q − 16)·d.
/// K-quants use super-blocks of 256 (ggml's QK_K):
/// Q4_K = { f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128] } (144 bytes): 8 sub-blocks of 32 with 6-bit scale sc_j
/// and 6-bit min m_j packed in scales[] (ggml's get_scale_min_k4); qs[32i..32i+31] hold sub-block 2i in the low nibbles
/// and 2i+1 in the high nibbles; value = d·sc_j·q − dmin·m_j.
/// Q5_K = { f16 d; f16 dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128] } (176 bytes): Q4_K's scales, mins and
/// nibble order, plus a fifth bit per element: element 64i + l (low nibble of qs[32i + l]) takes bit 2i of qh[l],
/// element 64i + 32 + l (high nibble) bit 2i + 1 of qh[l]; value = d·sc_j·q − dmin·m_j with q in 0..31.
/// Q6_K = { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d } (210 bytes): two halves of 128 elements; in half h,
/// for l in 0..31 the elements l, l+32, l+64, l+96 take their low 4 bits from the low nibble of ql[64h+l], the low
/// nibble of ql[64h+l+32], the high nibble of ql[64h+l], the high nibble of ql[64h+l+32], and their high 2 bits from
/// bits 0–1, 2–3, 4–5, 6–7 of qh[32h+l]; value = d·scales[e/16]·(q − 32) for element e of the super-block.
/// </summary>
public enum DataType
{
    /// <summary>32-bit IEEE float.</summary>
    F32 = 0,
    /// <summary>16-bit IEEE half.</summary>
    F16 = 1,
    /// <summary>4-bit blocks of 32 with one f16 scale.</summary>
    Q4_0 = 2,
    /// <summary>5-bit blocks of 32 with one f16 scale (the fifth bits packed in a uint32).</summary>
    Q5_0 = 6,
    /// <summary>8-bit blocks of 32 with one f16 scale.</summary>
    Q8_0 = 8,
    /// <summary>4-bit super-blocks of 256: f16 scale and min, 8 sub-blocks of 32 with 6-bit scales and mins.</summary>
    Q4_K = 12,
    /// <summary>5-bit super-blocks of 256: Q4_K's layout plus one high bit per element.</summary>
    Q5_K = 13,
    /// <summary>6-bit super-blocks of 256: f16 scale, 16 sub-blocks of 16 with int8 scales.</summary>
    Q6_K = 14,
    /// <summary>32-bit signed integer (token ids, positions, slots, block tables).</summary>
    I32 = 26,
    /// <summary>bfloat16: the top 16 bits of an f32.</summary>
    BF16 = 30,
}

/// <summary>
/// The storage geometry of one <see cref="DataType"/>: what any backend needs to size and address a tensor of it.
/// </summary>
/// <param name="Type">The type (its value is ggml's type id).</param>
/// <param name="Name">The name llama.cpp prints ("q8_0", "bf16"; ggml spells the K-quants "q4_K", "q5_K", "q6_K").</param>
/// <param name="BlockSize">Elements per block: 32 for Q4_0/Q5_0/Q8_0, 256 (ggml's QK_K) for the K-quants, 1 otherwise.</param>
/// <param name="BlockBytes">Bytes per block (per element for unquantized types).</param>
public sealed record DataTypeInfo(DataType Type, string Name, int BlockSize, int BlockBytes)
{
    /// <summary>True for block-quantized types (rows must be whole blocks).</summary>
    public bool IsQuantized => BlockSize > 1;
}

/// <summary>
/// The table of <see cref="DataType"/> geometry, the one place this layer describes a type. Adding a weight format
/// means a value in <see cref="DataType"/>, a row here, a row in the engine's format table (its quantizer and
/// dequantizer) and a row in each backend's kernel table.
/// </summary>
public static class DataTypes
{
    private static readonly DataTypeInfo[] Table =
    [
        new(DataType.F32, "f32", 1, 4),
        new(DataType.F16, "f16", 1, 2),
        new(DataType.Q4_0, "q4_0", 32, 18),     // f16 d + 16 nibble bytes
        new(DataType.Q5_0, "q5_0", 32, 22),     // f16 d + 4 bytes of fifth bits + 16 nibble bytes
        new(DataType.Q8_0, "q8_0", 32, 34),     // f16 d + 32 int8
        new(DataType.Q4_K, "q4_K", 256, 144),   // f16 d, dmin + 12 scale bytes + 128 nibble bytes
        new(DataType.Q5_K, "q5_K", 256, 176),   // f16 d, dmin + 12 scale bytes + 32 qh + 128 nibble bytes
        new(DataType.Q6_K, "q6_K", 256, 210),   // 128 ql + 64 qh + 16 int8 scales + f16 d
        new(DataType.I32, "i32", 1, 4),
        new(DataType.BF16, "bf16", 1, 2),
    ];

    // Indexed by the enum value (ggml ids are small), so a lookup costs one bounds check.
    private static readonly DataTypeInfo?[] ById = BuildIndex();

    private static DataTypeInfo?[] BuildIndex()
    {
        var index = new DataTypeInfo?[Table.Max(t => (int)t.Type) + 1];
        foreach (DataTypeInfo info in Table)
            index[(int)info.Type] = info;
        return index;
    }

    /// <summary>Every type, in ggml id order.</summary>
    public static IReadOnlyList<DataTypeInfo> All => Table;

    /// <summary>The geometry of <paramref name="type"/>; false for a value outside <see cref="DataType"/>.</summary>
    public static bool TryGetInfo(this DataType type, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out DataTypeInfo? info)
    {
        info = (uint)type < (uint)ById.Length ? ById[(int)type] : null;
        return info is not null;
    }

    /// <summary>The geometry of <paramref name="type"/>. Throws <see cref="ArgumentOutOfRangeException"/> for an unknown value.</summary>
    public static DataTypeInfo Info(this DataType type)
        => type.TryGetInfo(out DataTypeInfo? info) ? info : throw new ArgumentOutOfRangeException(nameof(type), type, "unknown data type");

    /// <summary>Elements per block: 32 for Q4_0/Q5_0/Q8_0, 256 for the K-quants, 1 otherwise (and for unknown values).</summary>
    public static int BlockSize(this DataType type) => type.TryGetInfo(out DataTypeInfo? info) ? info.BlockSize : 1;

    /// <summary>Bytes per block (per element for unquantized types). Throws <see cref="ArgumentOutOfRangeException"/> for an unknown value.</summary>
    public static int BlockBytes(this DataType type) => type.Info().BlockBytes;

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

    /// <summary>
    /// The name GGUF tools use ("q8_0", "bf16"; ggml spells the K-quants "q4_K", "q5_K", "q6_K"); an unknown value
    /// prints as its number, so messages about bad input never throw.
    /// </summary>
    public static string Name(this DataType type) => type.TryGetInfo(out DataTypeInfo? info) ? info.Name : ((int)type).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
