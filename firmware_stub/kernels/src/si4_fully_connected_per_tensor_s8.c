/*
 * si4_fully_connected_per_tensor_s8.c - FULLY_CONNECTED for one shape class,
 * int8, portable C: per-tensor quantization, symmetric weights, an input of
 * whole words (si4_nn.h). Any layer gives the bytes of si4_fully_connected_s8.
 *
 * The class's entry exists for the DSP build, whose twin
 * (kernels/dsp/si4_fully_connected_per_tensor_s8.c) is a kernel of its own,
 * so that a model whose dense layers are all of the class links only that
 * loop. The portable library has one dense kernel for every layer, which
 * this entry calls: a program linking this file links si4_fully_connected_s8.c
 * too (si4tool's exports ship both).
 */
#include "si4_nn.h"

void si4_fully_connected_per_tensor_s8(const si4_fully_connected_params *params,
                                       const int8_t *input,
                                       const int8_t *filter,
                                       const int32_t *bias,
                                       const int32_t *output_multiplier,
                                       const int32_t *output_shift,
                                       int8_t *output)
{
    si4_fully_connected_s8(params, input, filter, bias, output_multiplier, output_shift, output);
}
