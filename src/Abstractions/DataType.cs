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

/// <summary>Sizes of <see cref="DataType"/> values.</summary>
public static class DataTypes
{
    /// <summary>Elements per block: 32 for Q4_0/Q5_0/Q8_0, 256 for the K-quants, 1 otherwise.</summary>
    public static int BlockSize(this DataType type) => type switch
    {
        DataType.Q4_0 or DataType.Q5_0 or DataType.Q8_0 => 32,
        DataType.Q4_K or DataType.Q5_K or DataType.Q6_K => 256,
        _ => 1,
    };

    /// <summary>Bytes per block (per element for unquantized types).</summary>
    public static int BlockBytes(this DataType type) => type switch
    {
        DataType.F32 or DataType.I32 => 4,
        DataType.F16 or DataType.BF16 => 2,
        DataType.Q4_0 => 18,
        DataType.Q5_0 => 22,
        DataType.Q8_0 => 34,
        DataType.Q4_K => 144,
        DataType.Q5_K => 176,
        DataType.Q6_K => 210,
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

    /// <summary>The name GGUF tools use ("q8_0", "bf16"; ggml spells the K-quants "q4_K", "q5_K", "q6_K").</summary>
    public static string Name(this DataType type) => type switch
    {
        DataType.Q4_K => "q4_K",
        DataType.Q5_K => "q5_K",
        DataType.Q6_K => "q6_K",
        _ => type.ToString().ToLowerInvariant(),
    };
}
