#version 450
// Embed o[t, :] = dequant(table[ids[t], :]) for a table of any weight type (constant_id 3, a ggml type id; its use is
// the quantized types, embed.comp covers f32/f16/bf16 one element per invocation), read as GGUF blocks (blocks.glsl).
// One invocation per (token, 32-element unit). An id outside [0, V) gives a row of zeros, as embed.comp; nothing
// outside the bound table is read. The table binding holds rows [firstRow, firstRow + windowRows) (a table larger
// than one binding may span is embedded by one dispatch per window, windows on 16-byte boundaries): only outputs whose
// id falls in the window are written, plus, by the first window, the zero rows of out-of-range ids.
// Values are formed as ggml's dequantizers form them: d·q (exact), d·sc·q − dmin·m, d·sc·(q − 32).
// Bindings: 0 table (uint words of GGUF bytes), 1 ids (i32), 2 o (f32); push constants start with their word offsets.
// Dispatch: ceil(T·ceil(D / 32) / local size) groups as an x·y grid (group = y·numX + x).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 3) const uint TYPE = 0u;

layout(push_constant) uniform Args
{
    uint tOff;        // table row firstRow, in words from the start of binding 0
    uint iOff;        // ids[0], in words from the start of binding 1
    uint oOff;        // o row 0, in words from the start of binding 2
    uint T;           // tokens
    uint D;           // elements per row
    uint V;           // rows of the whole table
    uint firstRow;    // first table row in the bound window
    uint windowRows;  // table rows in the bound window
    uint rowBytes;    // bytes per table row
} pc;

layout(std430, set = 0, binding = 0) readonly buffer Weights { uint wq[]; };
layout(std430, set = 0, binding = 1) readonly buffer Ids { int ids[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out { float o[]; };

#include "blocks.glsl"

void main()
{
    uint units = (pc.D + 31u) / 32u;
    uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= pc.T * units)
        return;
    uint t = i / units, u = i - t * units;
    int id = ids[pc.iOff + t];
    bool valid = id >= 0 && uint(id) < pc.V;
    if (valid && (uint(id) < pc.firstRow || uint(id) - pc.firstRow >= pc.windowRows))
        return;  // another window's
    if (!valid && pc.firstRow != 0u)
        return;  // zeros: the first window's
    uint dst = pc.oOff + t * pc.D + 32u * u;
    uint count = min(32u, pc.D - 32u * u);
    if (!valid)
    {
        for (uint e = 0u; e < count; e++)
            o[dst + e] = 0.0;
        return;
    }
    Unit hd = unitHeader(4u * pc.tOff + (uint(id) - pc.firstRow) * pc.rowBytes, u);
    for (uint c = 0u; c < 4u; c++)
    {
        float q[8];
        chunk(hd, c, pc.D, q);
        for (uint k = 0u; k < 8u; k++)
        {
            uint e = 8u * c + k;
            if (e >= count)
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
            o[dst + e] = v;
        }
    }
}
