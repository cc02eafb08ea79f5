/*
 * si4_relu6_s8.c - RELU6, int8.
 *
 * out = clamp(x, lower, upper) with lower = input zero point and upper = the
 * input's quantization of 6.0: TFLM's Relu6Quantized
 * (micro/kernels/activations.h, constants from Relu6Prepare). TFLM does not
 * requantize here: the output is read on the input's scale, whatever the
 * output tensor's quantization says.
 */
#include "si4_nn_ops.h"

void si4_relu6_s8(const si4_relu6_params *params, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < params->size; ++i) {
        int32_t value = input[i];
        if (value < params->lower) {
            value = params->lower;
        }
        if (value > params->upper) {
            value = params->upper;
        }
        output[i] = (int8_t)value;
    }
}
