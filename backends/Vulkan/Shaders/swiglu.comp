#version 450
// SwiGlu: o = silu(g) * u = g / (1 + exp(-g)) * u, element-wise over n floats; o may be the same view as g or u.
layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer G { float g[]; };
layout(std430, set = 0, binding = 1) readonly buffer U { float u[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float o[]; };

layout(push_constant) uniform Push {
    uint g_off; uint u_off; uint o_off;
    uint n;
} p;

void main() {
    uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    float x = g[p.g_off + i];
    o[p.o_off + i] = x / (1.0 + exp(-x)) * u[p.u_off + i];
}
