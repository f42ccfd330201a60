#version 450
// MatMul, any weight type (specialization constant TYPE), lane sums reduced by subgroup xor-shuffles below the
// subgroup size (VK_SUBGROUP_FEATURE_SHUFFLE_BIT). Bit-identical to matmul.comp. See matmul.glsl.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#define SUBGROUP 1
#include "matmul.glsl"
