#version 450
// RmsNorm: y[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * w, one workgroup per row. Each invocation sums the squares
// of a strided slice of the row, then the workgroup reduces in a fixed order (shared-memory tree; with -DSUBGROUP,
// subgroupAdd then a tree over the subgroups), so a row's result never depends on the other rows. y may be x itself:
// every element is read before the barrier that precedes the writes.
#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;   // a power of two

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer W { float w[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push {
    uint x_off; uint w_off; uint y_off;
    uint rows;
    uint cols;
    float eps;
} p;

shared float partial[WG];

void main() {
    uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (row >= p.rows) return;
    uint tid = gl_LocalInvocationID.x;
    uint base = row * p.cols;
    float sum = 0.0;
    for (uint i = tid; i < p.cols; i += WG) {
        float v = x[p.x_off + base + i];
        sum += v * v;
    }
#ifdef SUBGROUP
    sum = subgroupAdd(sum);
    if (gl_SubgroupInvocationID == 0u) partial[gl_SubgroupID] = sum;
    barrier();
    uint count = gl_NumSubgroups;
#else
    partial[tid] = sum;
    barrier();
    uint count = WG;
#endif
    // Tree over `count` partial sums (count is a power of two: WG, or WG / subgroup size).
    for (uint s = count / 2u; s > 0u; s >>= 1u) {
        if (tid < s) partial[tid] += partial[tid + s];
        barrier();
    }
    float scale = 1.0 / sqrt(partial[0] / float(p.cols) + p.eps);
    for (uint i = tid; i < p.cols; i += WG)
        y[p.y_off + base + i] = x[p.x_off + base + i] * scale * w[p.w_off + i];
}
