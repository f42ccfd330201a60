#version 450
// builds: INT_DOT
// MatMul y[T, N] = x[T, K] · W[N, K]ᵀ for q8_0, q4_0 and q5_0 weights (constant_id 3, a ggml type id) with x
// quantized to int8 blocks of 32 (quantize_q8.comp), one weight row set per invocation: the int8 build of
// matmul_rows.comp for CPU Vulkan drivers (see there for why one weight row per invocation). Per unit of 32 elements
// the dot product of the weight's and x's quants is an exact integer (int8.glsl): with -DINT_DOT (matmul_int8_rows.
// int_dot.spv, offered where the device has integer dot product) OpSDot over packed words, else the same products as
// exact floats. Then y += (d_w · d_x) · Σ, units in increasing order (fma, precise) — the same additions for every T,
// TILE, workgroup size and build: batch-invariant and bit-identical across the family.
//
// x's 9-word blocks (8 words of quants, then d_x) are read with addresses the same for every lane (one load each,
// broadcast), 4× fewer words than f32 x; each x block serves ROWS weight rows.
// Bindings: 0 xq (uint, 9 words per block, rows K/32 blocks apart), 1 W (uint words of GGUF bytes), 2 y (f32); push
// constants start with their word offsets, then as matmul.comp. Dispatch: ceil(N / (size · ROWS)) workgroups as an
// x·y grid, z = ceil(T / TILE).
#extension GL_GOOGLE_include_directive : require
#ifdef INT_DOT
#extension GL_EXT_spirv_intrinsics : require
#endif

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint ROWS = 4u;   // weight rows per invocation
layout(constant_id = 3) const uint TYPE = 8u;   // ggml type id of W: q8_0, q4_0 or q5_0
layout(constant_id = 4) const uint TILE = 1u;   // x rows per workgroup

layout(push_constant) uniform Args
{
    uint xOff;      // xq row 0, in words from the start of binding 0
    uint wOff;      // weight row 0 (of this window), in words from the start of binding 1
    uint yOff;      // y row 0, in words from the start of binding 2
    uint T;         // x rows
    uint N;         // weight rows in this dispatch
    uint K;         // elements per row (a multiple of 32)
    uint nBase;     // y column of weight row 0 of this dispatch
    uint yStride;   // y row length in floats
    uint rowBytes;  // bytes per weight row
} pc;

layout(std430, set = 0, binding = 0) readonly buffer X { uint xq[]; };
layout(std430, set = 0, binding = 1) readonly buffer Weights { uint wq[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float ys[]; };

#include "blocks.glsl"
#include "int8.glsl"

void main()
{
    uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint n0 = group * gl_WorkGroupSize.x * ROWS + gl_LocalInvocationIndex;   // rows n0 + r·size, r < ROWS
    uint t0 = gl_WorkGroupID.z * TILE;
    uint units = pc.K / 32u;
    uint rowByte[ROWS];
    for (uint r = 0u; r < ROWS; r++)   // rows past N repeat the last row and are not stored
        rowByte[r] = 4u * pc.wOff + min(n0 + r * gl_WorkGroupSize.x, pc.N - 1u) * pc.rowBytes;
    uint xRow[TILE];   // rows past T read row T − 1, not stored
    for (uint s = 0u; s < TILE; s++)
        xRow[s] = pc.xOff + min(t0 + s, pc.T - 1u) * units * 9u;

    precise float acc[ROWS * TILE];
    for (uint o = 0u; o < ROWS * TILE; o++)
        acc[o] = 0.0;

    for (uint u = 0u; u < units; u++)
    {
        uint wp[ROWS * 8u];
        float dw[ROWS];
        for (uint r = 0u; r < ROWS; r++)
        {
            Unit h = unitHeader(rowByte[r], u);
            dw[r] = h.d;
            for (uint i = 0u; i < 8u; i++)
                wp[8u * r + i] = packedWord(h, i);
        }
        for (uint s = 0u; s < TILE; s++)
        {
            uint xb = xRow[s] + 9u * u;
            uint xw[8];
            for (uint i = 0u; i < 8u; i++)
                xw[i] = xq[xb + i];
            float dx = uintBitsToFloat(xq[xb + 8u]);
#ifdef INT_DOT
            for (uint r = 0u; r < ROWS; r++)
            {
                int dot = 0;
                for (uint i = 0u; i < 8u; i++)
                    dot += sdotPacked(wp[8u * r + i], xw[i], 0);
                acc[r * TILE + s] = fma(dw[r] * dx, float(dot), acc[r * TILE + s]);
            }
#else
            float xf[32];
            for (uint e = 0u; e < 32u; e++)
                xf[e] = byteF(xw[e >> 2u], e & 3u);
            for (uint r = 0u; r < ROWS; r++)
            {
                float dot = 0.0;
                for (uint e = 0u; e < 32u; e++)
                    dot = fma(byteF(wp[8u * r + (e >> 2u)], e & 3u), xf[e], dot);
                acc[r * TILE + s] = fma(dw[r] * dx, dot, acc[r * TILE + s]);
            }
#endif
        }
    }

    for (uint r = 0u; r < ROWS; r++)
    {
        uint n = n0 + r * gl_WorkGroupSize.x;
        if (n < pc.N)
            for (uint s = 0u; s < TILE; s++)
                if (t0 + s < pc.T)
                    ys[pc.yOff + (t0 + s) * pc.yStride + pc.nBase + n] = acc[r * TILE + s];
    }
}
