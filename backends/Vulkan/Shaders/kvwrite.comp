#version 450
// KvWrite: k[t, :] and v[t, :] (f32, rowElements each) into slot slots[t] of one layer's K and V planes. F16 caches
// (constant_id 3 = 1) store two halves per 32-bit word (element 2w in the low half, packHalf2x16's order; an odd
// last element pairs with 0), f32 caches one float per word. One invocation per (row, word). A slot outside
// [0, slotsPerLayer) is skipped: nothing outside the layer's planes is ever written.
layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint F16 = 1;

layout(std430, set = 0, binding = 0) readonly buffer K { float k[]; };
layout(std430, set = 0, binding = 1) readonly buffer V { float v[]; };
layout(std430, set = 0, binding = 2) readonly buffer S { int slots[]; };
layout(std430, set = 0, binding = 3) writeonly buffer KC { uint kc[]; };
layout(std430, set = 0, binding = 4) writeonly buffer VC { uint vc[]; };

layout(push_constant) uniform Push {
    uint k_off; uint v_off; uint s_off; uint kc_off; uint vc_off;
    uint total;            // rows * row_words
    uint row_elements;     // Hkv * Dh
    uint row_words;        // words per cached row
    uint slots_per_layer;
} p;

void main() {
    uint id = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (id >= p.total) return;
    uint t = id / p.row_words, w = id - t * p.row_words;
    int slot = slots[p.s_off + t];
    if (slot < 0 || uint(slot) >= p.slots_per_layer) return;
    uint dst = uint(slot) * p.row_words + w;
    uint src = t * p.row_elements;
    if (F16 != 0u) {
        uint e = 2u * w;
        bool second = e + 1u < p.row_elements;
        vec2 kk = vec2(k[p.k_off + src + e], second ? k[p.k_off + src + e + 1u] : 0.0);
        vec2 vv = vec2(v[p.v_off + src + e], second ? v[p.v_off + src + e + 1u] : 0.0);
        kc[p.kc_off + dst] = packHalf2x16(kk);
        vc[p.vc_off + dst] = packHalf2x16(vv);
    } else {
        kc[p.kc_off + dst] = floatBitsToUint(k[p.k_off + src + w]);
        vc[p.vc_off + dst] = floatBitsToUint(v[p.v_off + src + w]);
    }
}
