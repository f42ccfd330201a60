// Weight rows read directly as GGUF blocks from a uint32 storage buffer (no dequantized copy), for matmul and
// embed_quant. Included, not compiled alone. The includer declares the weight buffer as
//     layout(std430, set = 0, binding = B) readonly buffer Weights { uint wq[]; };
// and the specialization constant TYPE (a ggml type id, as Serving.Abstractions.DataType).
//
// Everything is addressed in bytes: GGUF blocks are 18 (q4_0), 22 (q5_0), 34 (q8_0) or 210 (q6_K) bytes, so a block
// often starts at an odd half-word; ld32/ld64 assemble unaligned little-endian words from two or three aligned ones
// with only 32-bit storage. Halves (f16 scales, f16/bf16 weights) always start at even bytes.
//
// A row is cut into units of 32 elements (a q4_0/q5_0/q8_0 block, a K-quant sub-block, or 32 float elements), and a
// unit into 4 chunks of 8 elements. unitHeader() reads a unit's scales once; chunk() gives a chunk's 8 elements as
// floats in "quant space" (the integers q − offset for block types, the values themselves for float types), so that
//     unit value i = d · q_i                         (q8_0, q4_0, q5_0; d = Unit.d)
//                  = d · q_i − m                     (q4_K, q5_K; d = d·sc_j, m = dmin·m_j)
//                  = (i < 16 ? d : d2) · q_i         (q6_K; d = d·scales[2s], d2 = d·scales[2s+1])
//                  = q_i                             (f32, f16, bf16).

#define T_F32 0
#define T_F16 1
#define T_Q4_0 2
#define T_Q5_0 6
#define T_Q8_0 8
#define T_Q4_K 12
#define T_Q5_K 13
#define T_Q6_K 14
#define T_BF16 30

// True for the block types whose units carry a min (value = d·q − m).
#define HAS_MIN (TYPE == T_Q4_K || TYPE == T_Q5_K)
// True for types with a second scale for the second half of a unit.
#define HAS_HALF_SCALES (TYPE == T_Q6_K)
// True for f32/f16/bf16 (rows of any length; the last unit may be partial).
#define IS_FLOAT (TYPE == T_F32 || TYPE == T_F16 || TYPE == T_BF16)

uint wLast() { return uint(wq.length()) - 1u; }

// Bytes [byteOff, byteOff+4) as a little-endian word. s = 8·(byteOff mod 4); (b << 1) << (31 − s) is b << (32 − s)
// without the undefined shift by 32 when s = 0 (then it is 0). The second word is clamped into the buffer: when the
// offset is aligned it is not needed and may lie past the end.
uint funnel(uint a, uint b, uint s) { return (a >> s) | ((b << 1u) << (31u - s)); }

uint ld32(uint byteOff)
{
    uint i = byteOff >> 2u, s = (byteOff & 3u) * 8u;
    return funnel(wq[min(i, wLast())], wq[min(i + 1u, wLast())], s);
}

uvec2 ld64(uint byteOff)
{
    uint i = byteOff >> 2u, s = (byteOff & 3u) * 8u, last = wLast();
    uint a = wq[min(i, last)], b = wq[min(i + 1u, last)], c = wq[min(i + 2u, last)];
    return uvec2(funnel(a, b, s), funnel(b, c, s));
}

// The 16 bits at an even byte offset.
uint ld16(uint byteOff) { return (wq[min(byteOff >> 2u, wLast())] >> ((byteOff & 2u) * 8u)) & 0xFFFFu; }

float ldHalf(uint byteOff) { return unpackHalf2x16(ld16(byteOff)).x; }

// Byte k (0..7) of an 8-byte pair.
uint byteOf(uvec2 v, uint k) { return ((k < 4u ? v.x : v.y) >> ((k & 3u) * 8u)) & 0xFFu; }

struct Unit
{
    uint b;     // byte offset of the block (or super-block, or the unit's first float element)
    uint q;     // byte offset of the unit's quant bytes (K-quants, q4_0/q5_0/q8_0), unused for floats
    uint aux;   // q5_0: the 32 fifth bits; q4_K/q5_K: sub-block j; q6_K: (h << 2) | which
    uint first; // element index of the unit's first element in the row
    float d;    // see the table above
    float d2;
    float m;
};

// Byte idx (0..11) of the K-quants' packed scales, given as three words.
uint scaleByte(uvec3 p, uint idx) { return (p[idx >> 2u] >> ((idx & 3u) * 8u)) & 0xFFu; }

// Unit u (elements 32u..32u+31) of the row starting at byte rowByte.
Unit unitHeader(uint rowByte, uint u)
{
    Unit h;
    h.first = 32u * u;
    h.aux = 0u;
    h.q = 0u;
    h.d = 1.0;
    h.d2 = 1.0;
    h.m = 0.0;
    if (TYPE == T_F32)
        h.b = rowByte + 128u * u;
    else if (TYPE == T_F16 || TYPE == T_BF16)
        h.b = rowByte + 64u * u;
    else if (TYPE == T_Q8_0)
    {
        h.b = rowByte + 34u * u;
        h.q = h.b + 2u;
        h.d = ldHalf(h.b);
    }
    else if (TYPE == T_Q4_0)
    {
        h.b = rowByte + 18u * u;
        h.q = h.b + 2u;
        h.d = ldHalf(h.b);
    }
    else if (TYPE == T_Q5_0)
    {
        h.b = rowByte + 22u * u;
        h.q = h.b + 6u;
        h.aux = ld32(h.b + 2u);
        h.d = ldHalf(h.b);
    }
    else if (TYPE == T_Q4_K || TYPE == T_Q5_K)
    {
        uint sb = u >> 3u, j = u & 7u;
        h.b = rowByte + (TYPE == T_Q4_K ? 144u : 176u) * sb;
        h.q = h.b + (TYPE == T_Q4_K ? 16u : 48u) + 32u * (j >> 1u);
        h.aux = j;
        // ggml's get_scale_min_k4: scales in bytes 0..3 / 8..11 (low nibbles), mins in 4..7 / 8..11 (high nibbles),
        // the top two bits of bytes 0..7 extending sub-blocks 4..7.
        uvec3 p = uvec3(ld32(h.b + 4u), ld32(h.b + 8u), ld32(h.b + 12u));
        uint sc, mn;
        if (j < 4u)
        {
            sc = scaleByte(p, j) & 63u;
            mn = scaleByte(p, j + 4u) & 63u;
        }
        else
        {
            sc = (scaleByte(p, j + 4u) & 0xFu) | ((scaleByte(p, j - 4u) >> 6u) << 4u);
            mn = (scaleByte(p, j + 4u) >> 4u) | ((scaleByte(p, j) >> 6u) << 4u);
        }
        uint dd = ld32(h.b); // d and dmin: the super-block's first two halves
        vec2 dm = unpackHalf2x16(dd);
        h.d = dm.x * float(sc);
        h.m = dm.y * float(mn);
    }
    else if (TYPE == T_Q6_K)
    {
        uint sb = u >> 3u, su = u & 7u, half_ = su >> 2u, which = su & 3u;
        h.b = rowByte + 210u * sb;
        h.q = h.b + 64u * half_ + 32u * (which & 1u);
        h.aux = su;
        float d = ldHalf(h.b + 208u);
        // Elements 128·half + 32·which + 0..31 use scales[8·half + 2·which] and the next one.
        uint s = ld16(h.b + 192u + 8u * half_ + 2u * which);
        h.d = d * float(bitfieldExtract(int(s), 0, 8));
        h.d2 = d * float(bitfieldExtract(int(s), 8, 8));
    }
    return h;
}

// Elements 8c..8c+7 of unit h (see the table at the top), K = the row length (float types only: elements ≥ K are 0).
void chunk(Unit h, uint c, uint K, out float q[8])
{
    if (TYPE == T_F32)
    {
        uint w0 = (h.b >> 2u) + 8u * c, e0 = h.first + 8u * c;
        for (uint k = 0u; k < 8u; k++)
        {
            float v = 0.0;
            if (e0 + k < K)
                v = uintBitsToFloat(wq[min(w0 + k, wLast())]);
            q[k] = v;
        }
    }
    else if (TYPE == T_F16 || TYPE == T_BF16)
    {
        uint b0 = h.b + 16u * c, e0 = h.first + 8u * c;
        for (uint k = 0u; k < 8u; k++)
        {
            float v = 0.0;
            if (e0 + k < K)
            {
                uint bits = ld16(b0 + 2u * k);
                v = TYPE == T_F16 ? unpackHalf2x16(bits).x : uintBitsToFloat(bits << 16u);
            }
            q[k] = v;
        }
    }
    else if (TYPE == T_Q8_0)
    {
        uvec2 v = ld64(h.q + 8u * c);
        for (uint k = 0u; k < 8u; k++)
            q[k] = float(bitfieldExtract(int(k < 4u ? v.x : v.y), int((k & 3u) * 8u), 8));
    }
    else if (TYPE == T_Q4_0 || TYPE == T_Q5_0)
    {
        // Elements 0..15: low nibbles of qs[0..15]; 16..31: high nibbles.
        uvec2 v = ld64(h.q + 8u * (c & 1u));
        uint shift = 4u * (c >> 1u);
        for (uint k = 0u; k < 8u; k++)
        {
            uint n = (byteOf(v, k) >> shift) & 0xFu;
            if (TYPE == T_Q5_0)
                q[k] = float(int(n | (((h.aux >> (8u * c + k)) & 1u) << 4u)) - 16);
            else
                q[k] = float(int(n) - 8);
        }
    }
    else if (TYPE == T_Q4_K || TYPE == T_Q5_K)
    {
        // Sub-block j: nibble (j & 1) of qs[32·(j >> 1) + l]; q5_K's fifth bit is bit j of qh[l].
        uvec2 v = ld64(h.q + 8u * c);
        uint shift = 4u * (h.aux & 1u);
        uvec2 hb = uvec2(0u);
        if (TYPE == T_Q5_K)
            hb = ld64(h.b + 16u + 8u * c);
        for (uint k = 0u; k < 8u; k++)
        {
            uint n = (byteOf(v, k) >> shift) & 0xFu;
            if (TYPE == T_Q5_K)
                n |= ((byteOf(hb, k) >> h.aux) & 1u) << 4u;
            q[k] = float(n);
        }
    }
    else if (TYPE == T_Q6_K)
    {
        // Unit su = 4·half + which: low 4 bits from nibble (which >> 1) of ql[64·half + 32·(which & 1) + l], high 2
        // bits from bits 2·which.. of qh[32·half + l].
        uint half_ = h.aux >> 2u, which = h.aux & 3u;
        uvec2 lo = ld64(h.q + 8u * c);
        uvec2 hi = ld64(h.b + 128u + 32u * half_ + 8u * c);
        uint shift = 4u * (which >> 1u);
        for (uint k = 0u; k < 8u; k++)
        {
            uint n = ((byteOf(lo, k) >> shift) & 0xFu) | (((byteOf(hi, k) >> (2u * which)) & 3u) << 4u);
            q[k] = float(int(n) - 32);
        }
    }
}
