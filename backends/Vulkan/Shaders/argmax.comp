#version 450
// Argmax: out[t] = the first index of the largest value of row t (NaN never wins; a row of only NaN gives 0).
// One workgroup per row: each invocation scans a strided slice in increasing order, then the workgroup reduces pairs
// (value, index) where the larger value wins and, on equal values (+0 and -0 included), the smaller index.
#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;   // a power of two

layout(std430, set = 0, binding = 0) readonly buffer L { float logits[]; };
layout(std430, set = 0, binding = 1) writeonly buffer O { int result[]; };

layout(push_constant) uniform Push {
    uint l_off; uint o_off;
    uint rows;
    uint cols;
} p;

const uint NONE = 0xFFFFFFFFu;
shared float best_v[WG];
shared uint best_i[WG];

// True when (v, i) beats (bv, bi).
bool better(float v, uint i, float bv, uint bi) {
    if (i == NONE) return false;
    if (bi == NONE) return true;
    return v > bv || (v == bv && i < bi);
}

void main() {
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= p.rows) return;
    uint tid = gl_LocalInvocationID.x;
    uint base = p.l_off + row * p.cols;
    float bv = 0.0;
    uint bi = NONE;
    for (uint i = tid; i < p.cols; i += WG) {
        float v = logits[base + i];
        if (!isnan(v) && (bi == NONE || v > bv)) { bv = v; bi = i; }
    }
#ifdef SUBGROUP
    // Within the subgroup: the largest value, then the smallest index holding it.
    // (An empty lane offers -inf with no index; a lane holding a real -inf still offers its index.)
    float m = subgroupMax(bi == NONE ? uintBitsToFloat(0xFF800000u) : bv);
    uint mi = subgroupMin((bi != NONE && bv == m) ? bi : NONE);
    if (gl_SubgroupInvocationID == 0u) { best_v[gl_SubgroupID] = m; best_i[gl_SubgroupID] = mi; }
    barrier();
    uint count = gl_NumSubgroups;
#else
    best_v[tid] = bv;
    best_i[tid] = bi;
    barrier();
    uint count = WG;
#endif
    for (uint s = count / 2u; s > 0u; s >>= 1u) {
        if (tid < s && better(best_v[tid + s], best_i[tid + s], best_v[tid], best_i[tid])) {
            best_v[tid] = best_v[tid + s];
            best_i[tid] = best_i[tid + s];
        }
        barrier();
    }
    if (tid == 0u) result[p.o_off + row] = best_i[0] == NONE ? 0 : int(best_i[0]);
}
