#version 450
// builds: SUBGROUP STORAGE16 SUBGROUP+STORAGE16
// MatMul y[T, N] = x[T, K] · W[N, K]ᵀ with x, y f32 and W the GGUF bytes of any weight type (constant_id 3, a ggml
// type id), read as blocks (blocks.glsl): no dequantized copy, only 32-bit storage. Built twice: matmul.spv reduces the
// lane sums in shared memory; with -DSUBGROUP, matmul.subgroup.spv runs the lower tree levels as subgroup xor-shuffles
// (needs VK_SUBGROUP_FEATURE_SHUFFLE_BIT). Both give bit-identical results, as do all choices of ROWS, TILE and the
// workgroup size.
#extension GL_GOOGLE_include_directive : require
#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
//
// Work split: a workgroup has 32·G invocations in G lane groups of 32 (G = local size / 32). Lane group g computes
// weight rows n0..n0+ROWS−1 (n0 = (workgroup·G + g)·ROWS) for x rows t0..t0+TILE−1 (t0 = workgroup.z·TILE). Lane
// l takes the 32-element units u = l, l+32, l+64, ... of those rows, so neighbouring lanes read neighbouring blocks
// and every weight byte is read once per TILE x rows; each chunk of 8 decoded weights is used for all TILE x rows.
//
// Batch invariance, and the same bits for every variant: a lane accumulates its units in increasing u, each unit's
// dot product in element order with fma (precise: no compiler may contract or reorder differently per variant);
// the 32 lane sums are then added by one fixed pairwise tree, bottom-up (lane l + lane l+1 first, then pairs of
// pairs, ...). The subgroup variant runs the lower levels as xor-shuffles (a + b = b + a bit for bit, so both
// lanes of a pair hold the same sum) and the levels at and above the subgroup size in shared memory; the shared
// variant runs all five levels in shared memory. Neither the rows of the call (T), nor ROWS, TILE, G or the subgroup
// size changes which additions a row's result is made of.
//
// Bindings: 0 x (f32), 1 W (uint words of GGUF bytes), 2 y (f32); push constants start with their word offsets (the
// dispatcher's convention). A weight larger than maxStorageBufferRange is dispatched in row windows (nBase = the
// window's first row, N = its rows; windows start on 16-byte boundaries).
// Dispatch: row groups ceil(N / (ROWS·G)) as an x·y grid (group = y·numX + x), z = ceil(T / TILE).

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint ROWS = 1u;   // weight rows per lane group
layout(constant_id = 3) const uint TYPE = 0u;   // ggml type id of W
layout(constant_id = 4) const uint TILE = 1u;   // x rows per workgroup; ROWS·TILE ≤ 32

const uint GROUPS = gl_WorkGroupSize.x / 32u;
const uint OUTS = ROWS * TILE;

layout(push_constant) uniform Args
{
    uint xOff;      // x row 0, in words from the start of binding 0
    uint wOff;      // weight row 0 (of this window), in words from the start of binding 1
    uint yOff;      // y row 0, in words from the start of binding 2
    uint T;         // x rows
    uint N;         // weight rows in this dispatch
    uint K;         // elements per row
    uint nBase;     // y column of weight row 0 of this dispatch
    uint yStride;   // y row length in floats
    uint rowBytes;  // bytes per weight row
} pc;

layout(std430, set = 0, binding = 0) readonly buffer X { float xs[]; };
layout(std430, set = 0, binding = 1) readonly buffer Weights { uint wq[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float ys[]; };
#ifdef STORAGE16
#extension GL_EXT_shader_16bit_storage : require
// f16 weights read as pairs of halves (blocks.glsl, chunk()): the 16-bit-storage build, same bits as the word path.
layout(std430, set = 0, binding = 1) readonly buffer Weights16 { f16vec2 wh2[]; };
#endif

#include "blocks.glsl"

// Per lane group and output: up to 32 partial sums (fewer once subgroup levels have run).
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
    uint units = (pc.K + 31u) / 32u;

    precise float acc[OUTS];
    for (uint o = 0u; o < OUTS; o++)
        acc[o] = 0.0;

    for (uint u = lane; u < units; u += 32u)
    {
        Unit hd[ROWS];
        for (uint r = 0u; r < ROWS; r++)
            if (n0 + r < pc.N)
                hd[r] = unitHeader(4u * pc.wOff + (n0 + r) * pc.rowBytes, u);

        precise float p[OUTS * 2u];
        for (uint o = 0u; o < OUTS * 2u; o++)
            p[o] = 0.0;
        precise float xsum[TILE];
        for (uint s = 0u; s < TILE; s++)
            xsum[s] = 0.0;

        for (uint c = 0u; c < 4u; c++)
        {
            float xv[TILE * 8u];
            uint e0 = 32u * u + 8u * c;
            for (uint s = 0u; s < TILE; s++)
                for (uint k = 0u; k < 8u; k++)
                {
                    float v = 0.0;
                    if (t0 + s < pc.T && e0 + k < pc.K)
                        v = xs[pc.xOff + (t0 + s) * pc.K + e0 + k];
                    xv[8u * s + k] = v;
                }
            if (HAS_MIN)
                for (uint s = 0u; s < TILE; s++)
                    for (uint k = 0u; k < 8u; k++)
                        xsum[s] += xv[8u * s + k];
            uint half_ = HAS_HALF_SCALES ? c >> 1u : 0u;
            for (uint r = 0u; r < ROWS; r++)
            {
                if (n0 + r >= pc.N)
                    continue;
                float q[8];
                chunk(hd[r], c, pc.K, q);
                for (uint s = 0u; s < TILE; s++)
                {
                    uint o = 2u * (r * TILE + s) + half_;
                    for (uint k = 0u; k < 8u; k++)
                        p[o] = fma(q[k], xv[8u * s + k], p[o]);
                }
            }
        }

        for (uint r = 0u; r < ROWS; r++)
        {
            if (n0 + r >= pc.N)
                continue;
            for (uint s = 0u; s < TILE; s++)
            {
                uint o = r * TILE + s;
                if (IS_FLOAT)
                    acc[o] += p[2u * o];
                else if (HAS_HALF_SCALES)
                {
                    acc[o] = fma(hd[r].d, p[2u * o], acc[o]);
                    acc[o] = fma(hd[r].d2, p[2u * o + 1u], acc[o]);
                }
                else if (HAS_MIN)
                {
                    acc[o] = fma(hd[r].d, p[2u * o], acc[o]);
                    acc[o] = fma(-hd[r].m, xsum[s], acc[o]);
                }
                else
                    acc[o] = fma(hd[r].d, p[2u * o], acc[o]);
            }
        }
    }

    // The tree over the 32 lanes: levels h = 1, 2, 4, ... add lanes l and l + h for l a multiple of 2h.
    uint h = 1u;
#ifdef SUBGROUP
    for (; h < 32u && h < gl_SubgroupSize; h <<= 1u)
        for (uint o = 0u; o < OUTS; o++)
            acc[o] += subgroupShuffleXor(acc[o], h);
#endif
    precise float total[OUTS];
    if (h >= 32u)
    {
        // Every lane holds every sum; lane 0 writes them.
        if (lane == 0u)
            for (uint o = 0u; o < OUTS; o++)
            {
                uint r = o / TILE, s = o % TILE;
                if (n0 + r < pc.N && t0 + s < pc.T)
                    ys[pc.yOff + (t0 + s) * pc.yStride + pc.nBase + n0 + r] = acc[o];
            }
        return;
    }

    // Lanes that are multiples of h hold the sums of their runs of h lanes; the rest of the tree in shared memory.
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
