#version 450
// Embed output[t, :] = dequant(table[ids[t], :]) for a table of any weight type (specialization constant TYPE; the
// quantized types are its purpose), read as GGUF blocks (blocks.glsl). One invocation per (32-element unit, token):
// dispatch (ceil(ceil(D / 32) / local size), T, 1).
//
// Token ids are clamped into [0, V) so nothing outside the table is read (checking them is the engine's job; a bad
// id gives some row, never a fault). A table larger than maxStorageBufferRange is dispatched in chunks of rows: each
// dispatch binds rows [vBase, vBase + vCount) and writes only the tokens whose (clamped) id falls there.
//
// Values are formed as ggml's dequantizers do: d·q (exact), d·sc·q − dmin·m (one rounding), d·sc·(q − 32).
// Bindings: 0 ids (i32), 1 W (uint words of GGUF bytes), 2 output (f32).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint TYPE = 0u;

layout(push_constant) uniform Args
{
    uint T;         // tokens
    uint D;         // elements per row
    uint V;         // rows of the whole table (for clamping)
    uint vBase;     // first table row bound in this dispatch
    uint vCount;    // table rows bound in this dispatch
    uint idsOff;    // ids[0], in ints from the start of binding 0
    uint outOff;    // output row 0, in floats from the start of binding 2
    uint wOff;      // table row vBase, in bytes from the start of binding 1
    uint rowBytes;  // bytes per table row
} pc;

layout(std430, set = 0, binding = 0) readonly buffer Ids { int ids[]; };
layout(std430, set = 0, binding = 1) readonly buffer Weights { uint wq[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out { float outs[]; };

#include "blocks.glsl"

void main()
{
    uint u = gl_GlobalInvocationID.x, t = gl_GlobalInvocationID.y;
    if (t >= pc.T || 32u * u >= pc.D)
        return;
    uint id = uint(clamp(ids[pc.idsOff + t], 0, int(pc.V) - 1));
    if (id < pc.vBase || id - pc.vBase >= pc.vCount)
        return;
    Unit hd = unitHeader(pc.wOff + (id - pc.vBase) * pc.rowBytes, u);
    uint dst = pc.outOff + t * pc.D + 32u * u;
    for (uint c = 0u; c < 4u; c++)
    {
        float q[8];
        chunk(hd, c, pc.D, q);
        for (uint k = 0u; k < 8u; k++)
        {
            uint e = 8u * c + k;
            if (32u * u + e >= pc.D)
                break;
            float v;
            if (IS_FLOAT)
                v = q[k];
            else if (HAS_HALF_SCALES)
                v = (e < 16u ? hd.d : hd.d2) * q[k];
            else if (HAS_MIN)
                v = hd.d * q[k] - hd.m;
            else
                v = hd.d * q[k];
            outs[dst + e] = v;
        }
    }
}
