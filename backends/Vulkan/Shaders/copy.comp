#version 450
// Copy: n 32-bit words from s to d (byte copies that are not whole aligned words go through vkCmdCopyBuffer instead).
// Four words per invocation, strided by the workgroup, so loads and stores stay coalesced: the tuner's bandwidth probe.
layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer S { uint s[]; };
layout(std430, set = 0, binding = 1) writeonly buffer D { uint d[]; };

layout(push_constant) uniform Push {
    uint s_off; uint d_off;
    uint n;
} p;

void main() {
    uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint first = group * gl_WorkGroupSize.x * 4u + gl_LocalInvocationID.x;
    for (uint k = 0u; k < 4u; k++) {
        uint i = first + k * gl_WorkGroupSize.x;
        if (i < p.n) d[p.d_off + i] = s[p.s_off + i];
    }
}
