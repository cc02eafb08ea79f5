/*
 * si4_relu_s8.c - RELU, int8.
 *
 * out = clamp(output_zero_point + MBQM(x - input_zero_point, M, s),
 *             activation_min, activation_max)
 * with M * 2^(s - 31) = input_scale / output_scale and activation_min =
 * max(-128, output_zero_point): TFLM's ReluQuantized
 * (micro/kernels/activations.h), constants from CalculateReluOpData.
 */
#include "si4_nn_ops.h"
#include "si4_requant.h"

void si4_relu_s8(const si4_relu_params *params, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < params->size; ++i) {
        output[i] = si4_requantize_s8((int32_t)input[i] - params->input_zero_point, params->output_multiplier,
                                      params->output_shift, params->output_zero_point, params->activation_min,
                                      params->activation_max);
    }
}
