/*
 * si4_mul_s8.c - MUL, int8, with broadcasting.
 *
 * out = clamp(output_offset + MBQM((x1 + input1_offset) * (x2 + input2_offset), M, s),
 *             activation_min, activation_max)
 * with M * 2^(s - 31) = s1 * s2 / s_out: TFLM reference_integer_ops::Mul and,
 * for differing shapes, BroadcastMul6DSlow (same element arithmetic, NumPy
 * broadcasting over six dimensions, row-major output order).
 */
#include "si4_broadcast.h"
#include "si4_nn_ops.h"
#include "si4_requant.h"

static int8_t mul_element(const si4_mul_params *params, int32_t x1, int32_t x2)
{
    /* |product| <= 255 * 255: no overflow. */
    const int32_t product = (x1 + params->input1_offset) * (x2 + params->input2_offset);
    return si4_requantize_s8(product, params->output_multiplier, params->output_shift, params->output_offset,
                             params->activation_min, params->activation_max);
}

void si4_mul_s8(const si4_mul_params *params, const si4_broadcast_params *broadcast, const int8_t *input1,
                const int8_t *input2, int8_t *output)
{
    si4_broadcast_cursor cursor;
    const int32_t size = si4_broadcast_begin(broadcast, &cursor);
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = mul_element(params, input1[cursor.index1], input2[cursor.index2]);
        si4_broadcast_advance(&cursor);
    }
}
