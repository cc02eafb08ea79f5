/*
 * si4_add_s8.c - ADD of two int8 tensors with broadcasting (TFLM reference_integer_ops::Add,
 * BroadcastAdd6DSlow).
 *
 * Each input is brought to a common scale with 20 bits of headroom, the two are added in
 * int32, and the sum is requantized to the output scale, zero point and fused activation.
 * The output is walked as four nested loops; each input is read through its own stride per
 * loop (0 where it broadcasts). The output may be one of the inputs when that input has the
 * output's shape: element i is read before element i is written.
 */
#include <stdint.h>

#include "si4_nn.h"
#include "si4_requant.h"

static int8_t add_one(const si4_add_params *params, int8_t value1, int8_t value2)
{
    /* |value + offset| <= 255, so the shift by 20 stays far inside int32. */
    const int32_t shifted1 = ((int32_t)value1 + params->input1_offset) * ((int32_t)1 << params->left_shift);
    const int32_t shifted2 = ((int32_t)value2 + params->input2_offset) * ((int32_t)1 << params->left_shift);
    const int32_t scaled1 =
        si4_multiply_by_quantized_multiplier(shifted1, params->input1_multiplier, params->input1_shift);
    const int32_t scaled2 =
        si4_multiply_by_quantized_multiplier(shifted2, params->input2_multiplier, params->input2_shift);
    int32_t result = si4_multiply_by_quantized_multiplier(scaled1 + scaled2, params->output_multiplier,
                                                          params->output_shift) +
                     params->output_offset;
    if (result < params->activation_min) {
        result = params->activation_min;
    }
    if (result > params->activation_max) {
        result = params->activation_max;
    }
    return (int8_t)result;
}

void si4_add_s8(const si4_add_params *params, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    int32_t i0;
    int32_t i1;
    int32_t i2;
    int32_t i3;
    int32_t position = 0;
    for (i0 = 0; i0 < params->dim_0; ++i0) {
        for (i1 = 0; i1 < params->dim_1; ++i1) {
            for (i2 = 0; i2 < params->dim_2; ++i2) {
                const int32_t base1 =
                    i0 * params->input1_stride_0 + i1 * params->input1_stride_1 + i2 * params->input1_stride_2;
                const int32_t base2 =
                    i0 * params->input2_stride_0 + i1 * params->input2_stride_1 + i2 * params->input2_stride_2;
                for (i3 = 0; i3 < params->dim_3; ++i3) {
                    const int8_t value1 = input1[base1 + i3 * params->input1_stride_3];
                    const int8_t value2 = input2[base2 + i3 * params->input2_stride_3];
                    output[position] = add_one(params, value1, value2);
                    ++position;
                }
            }
        }
    }
}
