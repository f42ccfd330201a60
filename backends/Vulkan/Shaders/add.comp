#version 450
// Add: o = a + b element-wise over n floats; b either has a's shape or is one row of `cols` floats added to every row
// (broadcast != 0). One element per invocation; in place (o the same view as a or b) is allowed.
layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float o[]; };

layout(push_constant) uniform Push {
    uint a_off; uint b_off; uint o_off;   // binding starts in words (set by the dispatcher)
    uint n;                               // elements
    uint cols;                            // row width (for broadcast)
    uint broadcast;                       // 1: b is one row
} p;

void main() {
    uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    uint j = p.broadcast != 0u ? i % p.cols : i;
    o[p.o_off + i] = a[p.a_off + i] + b[p.b_off + j];
}
