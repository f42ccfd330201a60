// Integer helpers of the int8 MatMul family (matmul_int8.comp, matmul_int8_rows.comp): weights of q8_0, q4_0 and q5_0
// as signed bytes packed 4 per word, and the exact dot product of two such words. Included after blocks.glsl (it
// reads the weights' Unit). Two builds share it: with -DINT_DOT the dot product of 4 packed bytes is one SPIR-V
// OpSDotKHR (VK_KHR_shader_integer_dot_product, Vulkan 1.3 core; emitted through GL_EXT_spirv_intrinsics, which the
// glslang that builds these files has, where GL_EXT_integer_dot_product is newer); without it the same products are
// formed as floats. Both are exact — a product of two int8 is at most 2^14 and a unit's 32 of them sum to less than
// 2^20, so every f32 partial sum is an integer below 2^24 — so the two builds give the same bits in any order.

#define INT8_TYPE (TYPE == T_Q8_0 || TYPE == T_Q4_0 || TYPE == T_Q5_0)

// Bits 0..3 of b to bit 4 of bytes 0..3.
uint spread4(uint b) { return ((b & 1u) << 4u) | ((b & 2u) << 11u) | ((b & 4u) << 18u) | ((b & 8u) << 25u); }

// Four unsigned nibbles n (one per byte) to the signed bytes n − 8: n ^ 8 is n − 8 for n ≥ 8 and n + 8 (bit 3 set)
// for n < 8, whose byte then needs bits 4..7 set (8 · 0x1E = 0xF0, no carry between bytes).
uint signed4(uint n)
{
    uint v = n ^ 0x08080808u;
    return v | ((v & 0x08080808u) * 0x1Eu);
}

// Four unsigned 5-bit values n to the signed bytes n − 16 (the same with bit 4: 16 · 0x0E = 0xE0).
uint signed5(uint n)
{
    uint v = n ^ 0x10101010u;
    return v | ((v & 0x10101010u) * 0x0Eu);
}

// Word i (elements 4i..4i+3) of unit h's 32 quants as signed bytes, element 4i + j in byte j: q8_0's bytes as they
// are, q4_0's nibbles − 8, q5_0's nibbles with their fifth bit (bit e of qh for element e) − 16. Elements 0..15 are
// the low nibbles of qs[0..15], 16..31 the high ones.
uint packedWord(Unit h, uint i)
{
    if (TYPE == T_Q8_0)
        return h.qw[i];
    uint n = (h.qw[i & 3u] >> (4u * (i >> 2u))) & 0x0F0F0F0Fu;
    if (TYPE == T_Q5_0)
        return signed5(n | spread4(h.hw[0] >> (4u * i)));
    return signed4(n);
}

// Byte j (0..3) of a packed word as a float (a signed 8-bit integer, exact).
float byteF(uint w, uint j) { return float(bitfieldExtract(int(w), int(8u * j), 8)); }

#ifdef INT_DOT
// OpSDotKHR (4450) with PackedVectorFormat4x8Bit (0): capabilities DotProductKHR (6019), DotProductInput4x8BitPackedKHR (6018).
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdotPacked(uint a, uint b, spirv_literal int packedVectorFormat);
#endif
