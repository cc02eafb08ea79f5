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
#include "si4_broadcast.h"
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

void si4_sub_s8(const si4_sub_params *params, const si4_broadcast_params *broadcast, const int8_t *input1,
                const int8_t *input2, int8_t *output)
{
    si4_broadcast_cursor cursor;
    const int32_t size = si4_broadcast_begin(broadcast, &cursor);
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = sub_element(params, input1[cursor.index1], input2[cursor.index2]);
        si4_broadcast_advance(&cursor);
    }
}
