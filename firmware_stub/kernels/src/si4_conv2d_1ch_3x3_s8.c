/*
 * si4_conv2d_1ch_3x3_s8.c - CONV_2D of one input channel with a 3x3
 * window, int8 activations, int8 per-channel weights, portable C.
 *
 * One shape class of the convolution (si4_nn.h). The portable library has
 * one convolution for every shape, si4_conv2d_s8; the class's entry exists
 * for the DSP build, whose twin (kernels/dsp/si4_conv2d_1ch_3x3_s8.c) is a
 * kernel of its own, so that a model links only the DSP paths its layers
 * run. A program linking this file links
 * si4_conv2d_s8.c too (si4tool's exports ship both).
 */
#include "si4_nn.h"

void si4_conv2d_1ch_3x3_s8(const si4_conv2d_params *params,
                           const int8_t *input,
                           const int8_t *filter,
                           const int32_t *bias,
                           const int32_t *output_multiplier,
                           const int32_t *output_shift,
                           int8_t *output)
{
    si4_conv2d_s8(params, input, filter, bias, output_multiplier, output_shift, output);
}
