#version 450
// Embed for unquantized tables: o[t, c] = table[ids[t], c] as f32. constant_id 3 is the table type: 0 f32 (one float
// per word), 1 f16 (two halves per word, unpackHalf2x16), 2 bf16 (two per word, the high 16 bits of an f32), read from
// 32-bit words so no 16-bit storage is needed. An id outside [0, V) gives a row of zeros. One element per invocation.
// The table binding holds rows [first_row, first_row + window_rows) (a table larger than one binding may span is
// embedded by one dispatch per window): only outputs whose id falls in the window are written, plus, by the first
// window, the zero rows of out-of-range ids.
layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint TYPE = 0;

layout(std430, set = 0, binding = 0) readonly buffer T { uint table[]; };
layout(std430, set = 0, binding = 1) readonly buffer I { int ids[]; };
layout(std430, set = 0, binding = 2) writeonly buffer O { float o[]; };

layout(push_constant) uniform Push {
    uint t_off; uint i_off; uint o_off;
    uint n;          // T * cols
    uint cols;       // D
    uint vocab;      // V
    uint first_row;  // first table row in the bound window
    uint window_rows;
} p;

void main() {
    uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    uint t = i / p.cols, c = i - t * p.cols;
    int id = ids[p.i_off + t];
    bool valid = id >= 0 && uint(id) < p.vocab;
    if (valid && (uint(id) < p.first_row || uint(id) - p.first_row >= p.window_rows)) return;   // another window's
    if (!valid && p.first_row != 0u) return;                                                    // zeros: the first window's
    float value = 0.0;
    if (valid) {
        uint e = (uint(id) - p.first_row) * p.cols + c;
        if (TYPE == 0u) {
            value = uintBitsToFloat(table[p.t_off + e]);
        } else {
            uint word = table[p.t_off + (e >> 1u)];
            uint bits = (e & 1u) != 0u ? word >> 16u : word & 0xFFFFu;
            value = TYPE == 1u ? unpackHalf2x16(bits).x : uintBitsToFloat(bits << 16u);
        }
    }
    o[p.o_off + i] = value;
}
