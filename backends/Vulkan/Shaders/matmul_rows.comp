#version 450
// builds: STORAGE16
// MatMul y[T, N] = x[T, K] · W[N, K]ᵀ, one weight row per invocation: the build for CPU Vulkan drivers (lavapipe).
// x, y f32; W the GGUF bytes of any weight type (constant_id 3, a ggml type id), read as blocks (blocks.glsl): no
// dequantized copy, only 32-bit storage.
//
// Why a second MatMul: llvmpipe runs the invocations of a workgroup as the lanes of SIMD vectors and turns a storage
// load whose address differs between lanes into one scalar load per lane, while a load whose address is the same for
// every lane (derived only from push constants, the workgroup id and loop counters) is one load, broadcast. matmul.comp
// spreads a row's elements over 32 lanes, so every x and weight load differs per lane. Here invocation i of a
// workgroup computes weight row n = workgroup·size + i for TILE x rows, walking the row's 32-element units in order:
// the x element each lane needs is the same for all lanes (uniform loads), only the weight bytes differ per lane, and
// there is no cross-lane reduction (no shared memory, no barrier). Rows past N and x rows past T are clamped for the
// loads (never branched on, so no lane mask is ever set around a load) and skipped at the store.
//
// Batch invariance: a row's result is the units in increasing order, each unit's dot product in element order with
// fma (precise), then folded in with its scale — the same additions for every T, TILE and workgroup size.
//
// Bindings: 0 x (f32), 1 W (uint words of GGUF bytes), 2 y (f32); push constants start with their word offsets (the
// dispatcher's convention), then as matmul.comp. Dispatch: ceil(N / size) workgroups as an x·y grid, z = ceil(T / TILE).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint ROWS = 4u;   // weight rows per invocation
layout(constant_id = 3) const uint TYPE = 0u;   // ggml type id of W
layout(constant_id = 4) const uint TILE = 1u;   // x rows per workgroup

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

void main()
{
    uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint n0 = group * gl_WorkGroupSize.x * ROWS + gl_LocalInvocationIndex;   // rows n0 + r·size, r < ROWS
    uint t0 = gl_WorkGroupID.z * TILE;
    uint units = (pc.K + 31u) / 32u;
    uint rowByte[ROWS];
    for (uint r = 0u; r < ROWS; r++)   // rows past N repeat the last row and are not stored
        rowByte[r] = 4u * pc.wOff + min(n0 + r * gl_WorkGroupSize.x, pc.N - 1u) * pc.rowBytes;

    // The first element of each of the tile's x rows (rows past T read row T − 1, not stored).
    uint xRow[TILE];
    for (uint s = 0u; s < TILE; s++)
        xRow[s] = pc.xOff + min(t0 + s, pc.T - 1u) * pc.K;

    precise float acc[ROWS * TILE];
    for (uint o = 0u; o < ROWS * TILE; o++)
        acc[o] = 0.0;

    for (uint u = 0u; u < units; u++)
    {
        Unit hd[ROWS];
        for (uint r = 0u; r < ROWS; r++)
            hd[r] = unitHeader(rowByte[r], u);
        precise float p[ROWS * TILE * 2u];
        for (uint o = 0u; o < ROWS * TILE * 2u; o++)
            p[o] = 0.0;
        precise float xsum[TILE];
        for (uint s = 0u; s < TILE; s++)
            xsum[s] = 0.0;

        for (uint c = 0u; c < 4u; c++)
        {
            // Each x element is loaded once per invocation and used for all ROWS weight rows.
            uint e0 = 32u * u + 8u * c;
            float xv[TILE * 8u];
            for (uint s = 0u; s < TILE; s++)
                for (uint k = 0u; k < 8u; k++)
                {
                    // Float types: a partial last unit reads element K − 1 (its weight is 0 there).
                    xv[8u * s + k] = xs[xRow[s] + min(e0 + k, pc.K - 1u)];
                    if (HAS_MIN)
                        xsum[s] += xv[8u * s + k];
                }
            uint half_ = HAS_HALF_SCALES ? c >> 1u : 0u;
            for (uint r = 0u; r < ROWS; r++)
            {
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

    for (uint r = 0u; r < ROWS; r++)
    {
        uint n = n0 + r * gl_WorkGroupSize.x;
        if (n < pc.N)
            for (uint s = 0u; s < TILE; s++)
                if (t0 + s < pc.T)
                    ys[pc.yOff + (t0 + s) * pc.yStride + pc.nBase + n] = acc[r * TILE + s];
    }
}
