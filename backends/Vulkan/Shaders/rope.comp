#version 450
// Rope: rotates x [T, heads * headDim] in place. For row t, head h and pair i < half (= rotaryDim / 2):
// angle = pos[t] * invFreq[i]; Normal pairs (2i, 2i + 1), NeoX pairs (i, i + half); elements past rotaryDim stay.
// One invocation per (row, head, pair). sin and cos are computed here (Cody-Waite reduction to [-pi/4, pi/4] and
// Taylor polynomials, `precise` so no driver re-associates them), so every device gives f32-accurate values instead of
// the 2^-11 absolute error Vulkan allows its built-in sin/cos.
layout(local_size_x_id = 0) in;

layout(std430, set = 0, binding = 0) buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer P { int pos[]; };
layout(std430, set = 0, binding = 2) readonly buffer F { float inv_freq[]; };

layout(push_constant) uniform Push {
    uint x_off; uint pos_off; uint f_off;
    uint total;      // rows * heads * half
    uint heads;
    uint head_dim;
    uint half_rot;   // rotaryDim / 2
    uint neox;       // 1: NeoX pairing
} p;

void sincos_f32(float a, out float s, out float c) {
    // a = j * pi/2 + r, |r| <= pi/4, with pi/2 split in three parts so j * part1 is exact for |j| < 2^12.
    precise float j = floor(a * 0.636619772 + 0.5);
    precise float r = a - j * 1.5703125;
    r = r - j * 4.83751297e-4;
    r = r - j * 7.54978995e-8;
    precise float r2 = r * r;
    precise float sr = r * (1.0 + r2 * (-1.6666667e-1 + r2 * (8.3333333e-3 + r2 * (-1.98412698e-4 + r2 * 2.75573192e-6))));
    precise float cr = 1.0 + r2 * (-0.5 + r2 * (4.16666667e-2 + r2 * (-1.38888889e-3 + r2 * (2.48015873e-5 + r2 * -2.75573192e-7))));
    int q = int(j) & 3;
    if (q == 0) { s = sr; c = cr; }
    else if (q == 1) { s = cr; c = -sr; }
    else if (q == 2) { s = -sr; c = -cr; }
    else { s = -cr; c = sr; }
}

void main() {
    uint id = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (id >= p.total) return;
    uint i = id % p.half_rot;
    uint head = (id / p.half_rot) % p.heads;
    uint row = id / (p.half_rot * p.heads);
    float angle = float(pos[p.pos_off + row]) * inv_freq[p.f_off + i];
    float s, c;
    sincos_f32(angle, s, c);
    uint base = p.x_off + (row * p.heads + head) * p.head_dim;
    uint ia = base + (p.neox != 0u ? i : 2u * i);
    uint ib = ia + (p.neox != 0u ? p.half_rot : 1u);
    float a = x[ia], b = x[ib];
    x[ia] = a * c - b * s;
    x[ib] = a * s + b * c;
}
