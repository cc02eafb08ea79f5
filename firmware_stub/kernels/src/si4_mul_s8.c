/*
 * si4_mul_s8.c - MUL, int8, with broadcasting.
 *
 * out = clamp(output_offset + MBQM((x1 + input1_offset) * (x2 + input2_offset), M, s),
 *             activation_min, activation_max)
 * with M * 2^(s - 31) = s1 * s2 / s_out: TFLM reference_integer_ops::Mul and,
 * for differing shapes, BroadcastMul6DSlow (same element arithmetic, NumPy
 * broadcasting over six dimensions, row-major output order).
 */
#include "si4_nn_ops.h"
#include "si4_requant.h"

static int8_t mul_element(const si4_mul_params *params, int32_t x1, int32_t x2)
{
    /* |product| <= 255 * 255: no overflow. */
    const int32_t product = (x1 + params->input1_offset) * (x2 + params->input2_offset);
    return si4_requantize_s8(product, params->output_multiplier, params->output_shift, params->output_offset,
                             params->activation_min, params->activation_max);
}

/* Six nested loops over the output; a1..a5 / b1..b5 are the element indices of
 * the two inputs, advanced by their steps (0 along a broadcast dimension). */
void si4_mul_s8(const si4_mul_params *params, const si4_broadcast_params *broadcast, const int8_t *input1,
                const int8_t *input2, int8_t *output)
{
    const si4_broadcast_params *b = broadcast;
    int32_t out = 0;
    int32_t i0, i1, i2, i3, i4, i5;
    int32_t a0 = 0, b0 = 0;
    for (i0 = 0; i0 < b->shape0; ++i0, a0 += b->input1_stride0, b0 += b->input2_stride0) {
        int32_t a1 = a0, b1 = b0;
        for (i1 = 0; i1 < b->shape1; ++i1, a1 += b->input1_stride1, b1 += b->input2_stride1) {
            int32_t a2 = a1, b2 = b1;
            for (i2 = 0; i2 < b->shape2; ++i2, a2 += b->input1_stride2, b2 += b->input2_stride2) {
                int32_t a3 = a2, b3 = b2;
                for (i3 = 0; i3 < b->shape3; ++i3, a3 += b->input1_stride3, b3 += b->input2_stride3) {
                    int32_t a4 = a3, b4 = b3;
                    for (i4 = 0; i4 < b->shape4; ++i4, a4 += b->input1_stride4, b4 += b->input2_stride4) {
                        int32_t a5 = a4, b5 = b4;
                        for (i5 = 0; i5 < b->shape5; ++i5, a5 += b->input1_stride5, b5 += b->input2_stride5) {
                            output[out++] = mul_element(params, input1[a5], input2[b5]);
                        }
                    }
                }
            }
        }
    }
}
