#version 450
// Quantizes f32 activation rows to int8 blocks of 32 for the int8 MatMul family (matmul_int8*.comp), once per step
// for every MatMul that reads the same x (Ops/QuantizeQ8.cs). Per block of 32 elements, as the Cpu backend does
// (Kernels/MatMul/QuantizeActivations.cs): d = amax / 127, q_i = roundEven(x_i · (1 / d)) in [−127, 127] (0 when
// amax = 0); a NaN in the block makes d NaN, so the dot products it feeds are NaN as in f32.
//
// Output, per x row: K/32 blocks of 9 words: 8 words of 4 signed bytes (element 4i + j in byte j of word i, the
// order of GGUF's q8_0 quants), then d as f32 bits. A row's blocks depend only on that row: batch-invariant.
// Bindings: 0 x (f32 [T, K], rows K apart), 1 q (uint words); push constants start with their word offsets.
// One invocation per block; dispatch ceil(T·K/32 / size) workgroups as an x·y grid (group = y·numX + x).

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;

layout(push_constant) uniform Args
{
    uint xOff;    // x row 0, in words
    uint qOff;    // the output's first word
    uint blocks;  // T · K / 32
} pc;

layout(std430, set = 0, binding = 0) readonly buffer X { float xs[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Q { uint qs[]; };

void main()
{
    uint b = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationIndex;
    if (b >= pc.blocks)
        return;
    // Rows are contiguous (K apart) and K is a multiple of 32, so block b is elements 32b..32b+31 from x row 0.
    float v[32];
    float amax = 0.0;
    bool nan = false;
    for (uint i = 0u; i < 32u; i++)
    {
        v[i] = xs[pc.xOff + 32u * b + i];
        amax = max(amax, abs(v[i]));
        nan = nan || isnan(v[i]);
    }
    precise float d = amax / 127.0;
    if (nan)
        d = uintBitsToFloat(0x7FC00000u);
    float inv = d != 0.0 ? 1.0 / d : 0.0;
    uint o = pc.qOff + 9u * b;
    for (uint w = 0u; w < 8u; w++)
    {
        uint word = 0u;
        for (uint j = 0u; j < 4u; j++)
        {
            int q = int(clamp(roundEven(v[4u * w + j] * inv), -127.0, 127.0));
            word |= (uint(q) & 0xFFu) << (8u * j);
        }
        qs[o + w] = word;
    }
    qs[o + 8u] = floatBitsToUint(d);
}
