/*
 * si4_leaky_relu_s8.c - LEAKY_RELU, int8.
 *
 * d = x - input_zero_point;
 * out = clamp(output_zero_point + (d >= 0 ? MBQM(d, identity) : MBQM(d, alpha)), -128, 127)
 * with identity = input_scale / output_scale and alpha = input_scale * alpha
 * / output_scale: TFLM's reference_ops::QuantizeLeakyRelu. A negative alpha
 * gives a negative multiplier; TFLM then multiplies by its magnitude and
 * negates the product, and so does this kernel.
 */
#include "si4_nn_ops.h"
#include "si4_requant.h"

void si4_leaky_relu_s8(const si4_leaky_relu_params *params, const int8_t *input, int8_t *output)
{
    const int32_t alpha_negative = params->alpha_multiplier < 0;
    /* Through uint32 so that INT32_MIN (a mantissa rounded to -1) stays defined. */
    const int32_t alpha_magnitude =
        alpha_negative ? (int32_t)(0u - (uint32_t)params->alpha_multiplier) : params->alpha_multiplier;
    int32_t i;
    for (i = 0; i < params->size; ++i) {
        const int32_t d = (int32_t)input[i] - params->input_zero_point;
        if (d >= 0) {
            output[i] = si4_requantize_s8(d, params->identity_multiplier, params->identity_shift,
                                          params->output_zero_point, INT8_MIN, INT8_MAX);
        } else if (!alpha_negative) {
            output[i] = si4_requantize_s8(d, alpha_magnitude, params->alpha_shift, params->output_zero_point,
                                          INT8_MIN, INT8_MAX);
        } else {
            /* d < 0 and |scaled| <= |d| * 2^(shift) stays far from INT32_MIN for any
             * multiplier TFLM accepts; the negation goes through uint32 all the same. */
            const int32_t scaled = si4_multiply_by_quantized_multiplier(d, alpha_magnitude, params->alpha_shift);
            int32_t value = (int32_t)((uint32_t)params->output_zero_point - (uint32_t)scaled);
            value = value < INT8_MIN ? INT8_MIN : value;
            value = value > INT8_MAX ? INT8_MAX : value;
            output[i] = (int8_t)value;
        }
    }
}
