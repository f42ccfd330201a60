#version 450
// builds: STORAGE16
// Paged causal GQA attention over many sequences per step, K/V cache in f16 (two halves per uint word) or f32
// (specialization constant KV_F16). One workgroup per (query row t, head h): dispatch (T, H, 1).
//
// Row t attends to positions 0..Positions[t] of sequence Sequence[t]; position p lives in cache row
// BlockTables[seq, p / blockSize] · blockSize + p % blockSize of the bound layer plane (VulkanKvCache: per layer a K
// plane and a V plane of rows of rowStride elements, f16 rows padded to whole words), whose elements for kv head
// h / (H / Hkv) are Dh consecutive elements at kvh·Dh of the row. Positions, sequence rows and block ids are clamped
// into range, so nothing outside the bound planes or tables is read (checking them is the engine's job: bad values
// give a wrong row, never a fault).
//
// Softmax over chunks of CHUNK positions (the score buffer in shared memory; longer contexts loop, rescaling the
// running sum and output like an online softmax). A row's arithmetic depends only on that row's position and the
// pipeline's constants: batch-invariant. Reductions: each invocation folds its own positions in increasing order,
// then a fixed tree over the workgroup; the weighted sum of V runs over positions in increasing order per dimension.
// Bindings: 0 q (f32 [T, H·Dh]), 1 K plane, 2 V plane, 3 positions (i32), 4 sequence (i32), 5 block tables (i32
// [S, M]), 6 output (f32 [T, H·Dh]); push constants start with their word offsets.
//
// When Dh is even, K and V are read two elements at a time (a row's elements for one kv head then start at an even
// element, so an f16 pair is one 32-bit word): the scores' dot products fold the pair in dimension order, and each
// invocation of the V sum owns a pair of dimensions — the same additions as one element at a time, half the loads
// of an f16 cache. An f16 pair is read as a uint with unpackHalf2x16, or, with -DSTORAGE16 (attention.storage16.spv,
// where the device has 16-bit storage), as an f16vec2 widened to vec2; f16 → f32 is exact, so both builds give the
// same bits.

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 3) const bool KV_F16 = true;
layout(constant_id = 4) const uint CHUNK = 1024u;  // scores held in shared memory at a time
layout(constant_id = 5) const uint DPT = 2u;       // head dims per invocation: Dh ≤ local size · DPT

const uint WG = gl_WorkGroupSize.x;
const uint ACC = DPT + (DPT & 1u);  // accumulators per invocation: DPT rounded up to pairs

layout(push_constant) uniform Args
{
    uint qOff;       // q row 0, in words
    uint kOff;       // the layer's K plane, in words
    uint vOff;       // the layer's V plane, in words
    uint posOff;     // positions[0], in words
    uint seqOff;     // sequence[0], in words
    uint tableOff;   // block tables [0, 0], in words
    uint outOff;     // output row 0, in words
    uint T;          // query rows
    uint H;          // query heads
    uint Hkv;        // kv heads
    uint Dh;         // head dim
    uint blockSize;  // slots per block
    uint blocks;     // blocks in the bound layer
    uint tableCols;  // M: block-table columns
    uint sequences;  // S: block-table rows
    uint rowStride;  // elements per cache row (Hkv·Dh, rounded up to even for f16)
    float scale;     // logit scale
} pc;

layout(std430, set = 0, binding = 0) readonly buffer Q { float qs[]; };
layout(std430, set = 0, binding = 1) readonly buffer KCache { uint kc[]; };
layout(std430, set = 0, binding = 2) readonly buffer VCache { uint vc[]; };
layout(std430, set = 0, binding = 3) readonly buffer Positions { int positions[]; };
layout(std430, set = 0, binding = 4) readonly buffer Sequence { int sequence[]; };
layout(std430, set = 0, binding = 5) readonly buffer Tables { int tables[]; };
layout(std430, set = 0, binding = 6) writeonly buffer Out { float outs[]; };
#ifdef STORAGE16
#extension GL_EXT_shader_16bit_storage : require
// The same K and V planes as f16 pairs (used only when KV_F16).
layout(std430, set = 0, binding = 1) readonly buffer KCache16 { f16vec2 kc2[]; };
layout(std430, set = 0, binding = 2) readonly buffer VCache16 { f16vec2 vc2[]; };
#endif

shared float qv[WG * DPT];
shared float scores[CHUNK];
shared uint rowBase[CHUNK];  // element offset of each chunk position's row in the plane
shared float red[WG];

float kAt(uint e)
{
    if (KV_F16)
        return unpackHalf2x16(kc[e >> 1u] >> ((e & 1u) * 16u)).x;
    return uintBitsToFloat(kc[e]);
}

float vAt(uint e)
{
    if (KV_F16)
        return unpackHalf2x16(vc[e >> 1u] >> ((e & 1u) * 16u)).x;
    return uintBitsToFloat(vc[e]);
}

// Elements e and e + 1 (e even).
vec2 kPair(uint e)
{
    if (KV_F16)
#ifdef STORAGE16
        return vec2(kc2[e >> 1u]);
#else
        return unpackHalf2x16(kc[e >> 1u]);
#endif
    return vec2(uintBitsToFloat(kc[e]), uintBitsToFloat(kc[e + 1u]));
}

vec2 vPair(uint e)
{
    if (KV_F16)
#ifdef STORAGE16
        return vec2(vc2[e >> 1u]);
#else
        return unpackHalf2x16(vc[e >> 1u]);
#endif
    return vec2(uintBitsToFloat(vc[e]), uintBitsToFloat(vc[e + 1u]));
}

// Tree over red[0..WG): max when isMax, else sum; every invocation gets the result. WG is a power of two.
float reduceAll(float v, bool isMax)
{
    red[gl_LocalInvocationIndex] = v;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1u)
    {
        if (gl_LocalInvocationIndex < s)
        {
            float a = red[gl_LocalInvocationIndex], b = red[gl_LocalInvocationIndex + s];
            red[gl_LocalInvocationIndex] = isMax ? max(a, b) : a + b;
        }
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

void main()
{
    uint t = gl_WorkGroupID.x, h = gl_WorkGroupID.y, tid = gl_LocalInvocationIndex;
    uint Dh = pc.Dh, rowElems = pc.rowStride;
    uint kvh = h / (pc.H / pc.Hkv);

    for (uint i = 0u; i < DPT; i++)
    {
        uint d = tid + i * WG;
        if (d < Dh)
            qv[d] = qs[pc.qOff + t * pc.H * Dh + h * Dh + d];
    }
    barrier();

    uint capacity = pc.tableCols * pc.blockSize;
    uint pos = uint(clamp(positions[pc.posOff + t], 0, int(capacity) - 1));
    uint seq = uint(clamp(sequence[pc.seqOff + t], 0, int(pc.sequences) - 1));
    uint tableRow = pc.tableOff + seq * pc.tableCols;
    uint kBase = (KV_F16 ? 2u : 1u) * pc.kOff + kvh * Dh;
    uint vBase = (KV_F16 ? 2u : 1u) * pc.vOff + kvh * Dh;
    uint ctx = pos + 1u;
    bool pairs = (Dh & 1u) == 0u;

    float runMax = -1.0 / 0.0;  // -inf
    precise float runSum = 0.0;
    precise float acc[ACC];
    for (uint i = 0u; i < ACC; i++)
        acc[i] = 0.0;

    for (uint j0 = 0u; j0 < ctx; j0 += CHUNK)
    {
        uint count = min(CHUNK, ctx - j0);

        // Scores of this chunk: one position per invocation at a time, the dot product in dimension order.
        float localMax = -1.0 / 0.0;
        for (uint j = tid; j < count; j += WG)
        {
            uint p = j0 + j;
            int blk = clamp(tables[tableRow + p / pc.blockSize], 0, int(pc.blocks) - 1);
            uint base = (uint(blk) * pc.blockSize + p % pc.blockSize) * rowElems;
            precise float dot = 0.0;
            if (pairs)
                for (uint d = 0u; d < Dh; d += 2u)
                {
                    vec2 k = kPair(kBase + base + d);
                    dot = fma(qv[d], k.x, dot);
                    dot = fma(qv[d + 1u], k.y, dot);
                }
            else
                for (uint d = 0u; d < Dh; d++)
                    dot = fma(qv[d], kAt(kBase + base + d), dot);
            float s = dot * pc.scale;
            scores[j] = s;
            rowBase[j] = base;
            localMax = max(localMax, s);
        }
        float chunkMax = reduceAll(localMax, true);
        float newMax = max(runMax, chunkMax);
        float alpha = exp(runMax - newMax);  // 0 on the first chunk (runMax = -inf)

        precise float localSum = 0.0;
        for (uint j = tid; j < count; j += WG)
        {
            float e = exp(scores[j] - newMax);
            scores[j] = e;
            localSum += e;
        }
        float chunkSum = reduceAll(localSum, false);  // its barriers also publish scores[] and rowBase[]
        runSum = runSum * alpha + chunkSum;
        runMax = newMax;

        if (pairs)
            for (uint i = 0u; i < ACC; i += 2u)
            {
                uint d = 2u * (tid + (i >> 1u) * WG);   // dims d and d + 1 in acc[i], acc[i + 1]
                if (d >= Dh)
                    continue;
                precise float a = acc[i] * alpha, b = acc[i + 1u] * alpha;
                for (uint j = 0u; j < count; j++)
                {
                    vec2 v = vPair(vBase + rowBase[j] + d);
                    a = fma(scores[j], v.x, a);
                    b = fma(scores[j], v.y, b);
                }
                acc[i] = a;
                acc[i + 1u] = b;
            }
        else
            for (uint i = 0u; i < DPT; i++)
            {
                uint d = tid + i * WG;
                if (d >= Dh)
                    continue;
                precise float a = acc[i] * alpha;
                for (uint j = 0u; j < count; j++)
                    a = fma(scores[j], vAt(vBase + rowBase[j] + d), a);
                acc[i] = a;
            }
        barrier();  // scores[] is rewritten by the next chunk
    }

    for (uint i = 0u; i < ACC; i++)
    {
        uint d = pairs ? 2u * (tid + (i >> 1u) * WG) + (i & 1u) : tid + i * WG;
        if (d < Dh)
            outs[pc.outOff + t * pc.H * Dh + h * Dh + d] = acc[i] / runSum;
    }
}
