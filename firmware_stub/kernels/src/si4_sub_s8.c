/*
 * si4_sub_s8.c - SUB, int8, with broadcasting.
 *
 * v_i = MBQM((x_i + input_i_offset) * 2^left_shift, input_i_multiplier, input_i_shift)
 * out = clamp(MBQM(v1 - v2, output_multiplier, output_shift) + output_offset,
 *             activation_min, activation_max)
 * with left_shift 20 and the multipliers of CalculateOpDataSub (all shifts
 * <= 0, so MBQM is MultiplyByQuantizedMultiplierSmallerThanOneExp): TFLM
 * reference_ops::Sub (SubElementwise) and BroadcastQuantSubSlow.
 */
#include "si4_nn_ops.h"
#include "si4_requant.h"

static int8_t sub_element(const si4_sub_params *params, int32_t x1, int32_t x2)
{
    /* |x + offset| <= 255, so the shifted values stay below 2^28. */
    const int32_t shifted1 = (x1 + params->input1_offset) * ((int32_t)1 << params->left_shift);
    const int32_t shifted2 = (x2 + params->input2_offset) * ((int32_t)1 << params->left_shift);
    const int32_t scaled1 = si4_multiply_by_quantized_multiplier(shifted1, params->input1_multiplier,
                                                                 params->input1_shift);
    const int32_t scaled2 = si4_multiply_by_quantized_multiplier(shifted2, params->input2_multiplier,
                                                                 params->input2_shift);
    return si4_requantize_s8(scaled1 - scaled2, params->output_multiplier, params->output_shift,
                             params->output_offset, params->activation_min, params->activation_max);
}

/* Six nested loops over the output; a1..a5 / b1..b5 are the element indices of
 * the two inputs, advanced by their steps (0 along a broadcast dimension). */
void si4_sub_s8(const si4_sub_params *params, const si4_broadcast_params *broadcast, const int8_t *input1,
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
                            output[out++] = sub_element(params, input1[a5], input2[b5]);
                        }
                    }
                }
            }
        }
    }
}
