#version 450
// Gather: o[r, :] = s[rows[r], :] for r < R; a row index outside [0, source rows) gives a row of zeros (never a read
// outside the source). One element per invocation.
layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer S { float s[]; };
layout(std430, set = 0, binding = 1) readonly buffer R { int rows[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float o[]; };

layout(push_constant) uniform Push {
    uint s_off; uint r_off; uint o_off;
    uint n;            // R * cols
    uint cols;
    uint source_rows;
} p;

void main() {
    uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    uint r = i / p.cols, c = i - r * p.cols;
    int src = rows[p.r_off + r];
    o[p.o_off + i] = (src >= 0 && uint(src) < p.source_rows) ? s[p.s_off + uint(src) * p.cols + c] : 0.0;
}
