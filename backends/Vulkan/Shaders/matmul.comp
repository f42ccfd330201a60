#version 450
// MatMul, any weight type (specialization constant TYPE), lane sums reduced in shared memory. Needs only 32-bit
// storage. See matmul.glsl.
#extension GL_GOOGLE_include_directive : require
#define SUBGROUP 0
#include "matmul.glsl"
