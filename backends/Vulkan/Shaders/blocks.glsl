// Weight rows read directly as GGUF blocks from a uint32 storage buffer (no dequantized copy), for matmul and
// embed_quant. Included, not compiled alone. The includer declares the weight buffer as
//     layout(std430, set = 0, binding = B) readonly buffer Weights { uint wq[]; };
// and the specialization constant TYPE (a ggml type id, as Serving.Abstractions.DataType). A STORAGE16 build also
// declares the same binding as f16vec2 wh2[] (GL_EXT_shader_16bit_storage), which f16 chunks then read.
//
// Everything is addressed in bytes: GGUF blocks are 18 (q4_0), 22 (q5_0), 34 (q8_0) or 210 (q6_K) bytes, so a block
// often starts at an odd half-word; LOAD_WORDS assembles n unaligned little-endian words from
// n + 1 aligned ones with only 32-bit storage. Halves (f16 scales, f16/bf16 weights) always start at even bytes.
//
// A row is cut into units of 32 elements (a q4_0/q5_0/q8_0 block, a K-quant sub-block, or 32 float elements), and a
// unit into 4 chunks of 8 elements. unitHeader() reads a unit's scales and quant bytes once into registers; chunk() gives a chunk's 8 elements as
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

// The word at byte s/8 of the pair (a, b), s = 8·(offset mod 4); (b << 1) << (31 − s) is b << (32 − s) without the
// undefined shift by 32 when s = 0 (then it is 0).
uint funnel(uint a, uint b, uint s) { return (a >> s) | ((b << 1u) << (31u - s)); }


// The 16 bits at an even byte offset.
uint ld16(uint byteOff) { return (wq[min(byteOff >> 2u, wLast())] >> ((byteOff & 2u) * 8u)) & 0xFFFFu; }

float ldHalf(uint byteOff) { return unpackHalf2x16(ld16(byteOff)).x; }

// n little-endian words of the bytes from byteOff (any alignment) into v[0..n): n + 1 aligned loads, each clamped
// into the buffer.
#define LOAD_WORDS(v, byteOff, n)                                                   \
    {                                                                               \
        uint i0_ = (byteOff) >> 2u, s_ = ((byteOff) & 3u) * 8u, last_ = wLast();    \
        uint prev_ = wq[min(i0_, last_)];                                           \
        for (uint i_ = 0u; i_ < (n); i_++)                                          \
        {                                                                           \
            uint next_ = wq[min(i0_ + i_ + 1u, last_)];                             \
            v[i_] = funnel(prev_, next_, s_);                                       \
            prev_ = next_;                                                          \
        }                                                                           \
    }

struct Unit
{
    uint b;      // byte offset of the block (or super-block, or the unit's first float element)
    uint aux;    // q4_K/q5_K: sub-block j; q6_K: (half << 2) | which
    uint first;  // element index of the unit's first element in the row
    uint qw[8];  // the unit's quant bytes (q8_0: 32, q4_0/q5_0: 16 nibble bytes, K-quants: 32) as words
    uint hw[8];  // fifth/high bits: q5_0 hw[0] = qh; q5_K qh[0..31]; q6_K qh[32·half..+32]
    float d;     // see the table above
    float d2;
    float m;
};

// Byte idx (0..11) of the K-quants' packed scales, given as words.
uint scaleByte(uint p[4], uint idx) { return (p[1u + (idx >> 2u)] >> ((idx & 3u) * 8u)) & 0xFFu; }

// Byte k of a word array.
#define BYTE_OF(v, k) ((v[(k) >> 2u] >> (((k) & 3u) * 8u)) & 0xFFu)

// Unit u (elements 32u..32u+31) of the row starting at byte rowByte: its scales and all its quant bytes, read once.
Unit unitHeader(uint rowByte, uint u)
{
    Unit h;
    h.first = 32u * u;
    h.aux = 0u;
    h.d = 1.0;
    h.d2 = 1.0;
    h.m = 0.0;
    for (uint i = 0u; i < 8u; i++)
    {
        h.qw[i] = 0u;
        h.hw[i] = 0u;
    }
    if (TYPE == T_F32)
        h.b = rowByte + 128u * u;
    else if (TYPE == T_F16 || TYPE == T_BF16)
        h.b = rowByte + 64u * u;
    else if (TYPE == T_Q8_0)
    {
        h.b = rowByte + 34u * u;
        h.d = ldHalf(h.b);
        LOAD_WORDS(h.qw, h.b + 2u, 8u);
    }
    else if (TYPE == T_Q4_0)
    {
        h.b = rowByte + 18u * u;
        h.d = ldHalf(h.b);
        LOAD_WORDS(h.qw, h.b + 2u, 4u);
    }
    else if (TYPE == T_Q5_0)
    {
        h.b = rowByte + 22u * u;
        uint w[5];
        LOAD_WORDS(w, h.b + 2u, 5u);  // qh, then qs[16]
        h.d = ldHalf(h.b);
        h.hw[0] = w[0];
        for (uint i = 0u; i < 4u; i++)
            h.qw[i] = w[i + 1u];
    }
    else if (TYPE == T_Q4_K || TYPE == T_Q5_K)
    {
        uint sb = u >> 3u, j = u & 7u;
        h.b = rowByte + (TYPE == T_Q4_K ? 144u : 176u) * sb;
        h.aux = j;
        uint p[4];  // d, dmin, then the 12 packed scale bytes
        LOAD_WORDS(p, h.b, 4u);
        LOAD_WORDS(h.qw, h.b + (TYPE == T_Q4_K ? 16u : 48u) + 32u * (j >> 1u), 8u);
        if (TYPE == T_Q5_K)
            LOAD_WORDS(h.hw, h.b + 16u, 8u);
        // ggml's get_scale_min_k4: scales in bytes 0..3 / 8..11 (low nibbles), mins in 4..7 / 8..11 (high nibbles),
        // the top two bits of bytes 0..7 extending sub-blocks 4..7.
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
        vec2 dm = unpackHalf2x16(p[0]);
        h.d = dm.x * float(sc);
        h.m = dm.y * float(mn);
    }
    else if (TYPE == T_Q6_K)
    {
        uint sb = u >> 3u, su = u & 7u, half_ = su >> 2u, which = su & 3u;
        h.b = rowByte + 210u * sb;
        h.aux = su;
        LOAD_WORDS(h.qw, h.b + 64u * half_ + 32u * (which & 1u), 8u);
        LOAD_WORDS(h.hw, h.b + 128u + 32u * half_, 8u);
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
        uint e0 = h.first + 8u * c;
#ifdef STORAGE16
        // 16-bit storage build (the includer declares the weights again as f16vec2 wh2[]): a chunk at a 4-byte
        // boundary (rows of an even number of elements) is 4 f16vec2 loads; otherwise the word path below.
        if (TYPE == T_F16 && ((h.b + 16u * c) & 3u) == 0u)
        {
            uint p0 = (h.b + 16u * c) >> 2u;
            for (uint k = 0u; k < 4u; k++)
            {
                vec2 v = vec2(wh2[min(p0 + k, wLast())]);
                q[2u * k] = e0 + 2u * k < K ? v.x : 0.0;
                q[2u * k + 1u] = e0 + 2u * k + 1u < K ? v.y : 0.0;
            }
            return;
        }
#endif
        uint w[4];
        LOAD_WORDS(w, h.b + 16u * c, 4u);
        for (uint k = 0u; k < 8u; k++)
        {
            uint bits = (w[k >> 1u] >> ((k & 1u) * 16u)) & 0xFFFFu;
            float v = TYPE == T_F16 ? unpackHalf2x16(bits).x : uintBitsToFloat(bits << 16u);
            q[k] = e0 + k < K ? v : 0.0;
        }
    }
    else if (TYPE == T_Q8_0)
    {
        for (uint k = 0u; k < 8u; k++)
            q[k] = float(bitfieldExtract(int(h.qw[2u * c + (k >> 2u)]), int((k & 3u) * 8u), 8));
    }
    else if (TYPE == T_Q4_0 || TYPE == T_Q5_0)
    {
        // Elements 0..15: low nibbles of qs[0..15]; 16..31: high nibbles.
        uint shift = 4u * (c >> 1u);
        for (uint k = 0u; k < 8u; k++)
        {
            uint n = (BYTE_OF(h.qw, 8u * (c & 1u) + k) >> shift) & 0xFu;
            if (TYPE == T_Q5_0)
                q[k] = float(int(n | (((h.hw[0] >> (8u * c + k)) & 1u) << 4u)) - 16);
            else
                q[k] = float(int(n) - 8);
        }
    }
    else if (TYPE == T_Q4_K || TYPE == T_Q5_K)
    {
        // Sub-block j: nibble (j & 1) of qs[32·(j >> 1) + l]; q5_K's fifth bit is bit j of qh[l].
        uint shift = 4u * (h.aux & 1u);
        for (uint k = 0u; k < 8u; k++)
        {
            uint n = (BYTE_OF(h.qw, 8u * c + k) >> shift) & 0xFu;
            if (TYPE == T_Q5_K)
                n |= ((BYTE_OF(h.hw, 8u * c + k) >> h.aux) & 1u) << 4u;
            q[k] = float(n);
        }
    }
    else if (TYPE == T_Q6_K)
    {
        // Unit su = 4·half + which: low 4 bits from nibble (which >> 1) of ql[64·half + 32·(which & 1) + l], high 2
        // bits from bits 2·which.. of qh[32·half + l].
        uint which = h.aux & 3u;
        uint shift = 4u * (which >> 1u);
        for (uint k = 0u; k < 8u; k++)
        {
            uint n = ((BYTE_OF(h.qw, 8u * c + k) >> shift) & 0xFu) | (((BYTE_OF(h.hw, 8u * c + k) >> (2u * which)) & 3u) << 4u);
            q[k] = float(int(n) - 32);
        }
    }
}
