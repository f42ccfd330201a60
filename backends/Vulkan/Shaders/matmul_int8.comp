#version 450
// builds: SUBGROUP INT_DOT SUBGROUP+INT_DOT
// MatMul y[T, N] = x[T, K] · W[N, K]ᵀ for q8_0, q4_0 and q5_0 weights (constant_id 3, a ggml type id) with x
// quantized to int8 blocks of 32 (quantize_q8.comp): the int8 build of matmul.comp, same work split (a workgroup of
// 32·G lanes in G lane groups; lane l of a group takes units u = l, l+32, ... of ROWS weight rows for TILE x rows, so
// neighbouring lanes read neighbouring blocks) and the same fixed 32-lane tree (shared memory, or subgroup
// xor-shuffles for the lower levels with -DSUBGROUP). Per unit the dot product of the weight's and x's quants is an
// exact integer (int8.glsl): OpSDot over packed words with -DINT_DOT, exact float products without; then the lane's
// sum += (d_w · d_x) · dot (fma, precise). Every build, ROWS, TILE, G and T give the same bits: batch-invariant.
//
// Bindings: 0 xq (uint, 9 words per block, rows K/32 blocks apart), 1 W (uint words of GGUF bytes), 2 y (f32); push
// constants as matmul.comp. Dispatch: row groups ceil(N / (ROWS·G)) as an x·y grid, z = ceil(T / TILE).
#extension GL_GOOGLE_include_directive : require
#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#ifdef INT_DOT
#extension GL_EXT_spirv_intrinsics : require
#endif

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint ROWS = 1u;   // weight rows per lane group
layout(constant_id = 3) const uint TYPE = 8u;   // ggml type id of W: q8_0, q4_0 or q5_0
layout(constant_id = 4) const uint TILE = 1u;   // x rows per workgroup; ROWS·TILE ≤ 32

const uint GROUPS = gl_WorkGroupSize.x / 32u;
const uint OUTS = ROWS * TILE;

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

shared float partials[GROUPS * OUTS * 32u];

void main()
{
#ifdef SUBGROUP
    uint li = gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;
#else
    uint li = gl_LocalInvocationIndex;
#endif
    uint g = li >> 5u, lane = li & 31u;
    uint n0 = ((gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * GROUPS + g) * ROWS;
    uint t0 = gl_WorkGroupID.z * TILE;
    uint units = pc.K / 32u;

    precise float acc[OUTS];
    for (uint o = 0u; o < OUTS; o++)
        acc[o] = 0.0;

    for (uint u = lane; u < units; u += 32u)
    {
        uint wp[ROWS * 8u];
        float dw[ROWS];
        for (uint r = 0u; r < ROWS; r++)
        {
            Unit h = unitHeader(4u * pc.wOff + min(n0 + r, pc.N - 1u) * pc.rowBytes, u);
            dw[r] = h.d;
            for (uint i = 0u; i < 8u; i++)
                wp[8u * r + i] = packedWord(h, i);
        }
        for (uint s = 0u; s < TILE; s++)
        {
            uint xb = pc.xOff + (min(t0 + s, pc.T - 1u) * units + u) * 9u;
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

    // The tree over the 32 lanes, as matmul.comp: levels h = 1, 2, 4, ... add lanes l and l + h for l a multiple of 2h.
    uint h = 1u;
#ifdef SUBGROUP
    for (; h < 32u && h < gl_SubgroupSize; h <<= 1u)
        for (uint o = 0u; o < OUTS; o++)
            acc[o] += subgroupShuffleXor(acc[o], h);
#endif
    if (h >= 32u)
    {
        if (lane == 0u)
            for (uint o = 0u; o < OUTS; o++)
            {
                uint r = o / TILE, s = o % TILE;
                if (n0 + r < pc.N && t0 + s < pc.T)
                    ys[pc.yOff + (t0 + s) * pc.yStride + pc.nBase + n0 + r] = acc[o];
            }
        return;
    }

    uint runs = 32u / h;
    if (lane % h == 0u)
        for (uint o = 0u; o < OUTS; o++)
            partials[(g * OUTS + o) * 32u + lane / h] = acc[o];
    barrier();
    for (uint o = lane; o < OUTS; o += 32u)
    {
        precise float a[32];
        for (uint i = 0u; i < runs; i++)
            a[i] = partials[(g * OUTS + o) * 32u + i];
        for (uint step = 1u; step < runs; step <<= 1u)
            for (uint i = 0u; i < runs; i += 2u * step)
                a[i] += a[i + step];
        uint r = o / TILE, s = o % TILE;
        if (n0 + r < pc.N && t0 + s < pc.T)
            ys[pc.yOff + (t0 + s) * pc.yStride + pc.nBase + n0 + r] = a[0];
    }
}
