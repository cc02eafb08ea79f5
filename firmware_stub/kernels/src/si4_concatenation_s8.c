/*
 * si4_concatenation_s8.c - CONCATENATION along any axis, int8, one call per
 * input.
 *
 * Viewing the output as [outer][output_row_size] and this input as
 * [outer][copy_size], the input's rows go to columns [output_offset,
 * output_offset + copy_size) of the output's rows. TFLM (micro/kernels/
 * concatenation.cc) copies bytes for int8 and refuses, at Prepare, inputs
 * whose scale or zero point differ from the output's; si4tool refuses them
 * too (no requantization exists to match).
 */
#include "si4_nn_ops.h"

void si4_concatenation_s8(const si4_concatenation_params *params, const int8_t *input, int8_t *output)
{
    int32_t outer;
    for (outer = 0; outer < params->outer_size; ++outer) {
        const int8_t *from = input + outer * params->copy_size;
        int8_t *to = output + outer * params->output_row_size + params->output_offset;
        int32_t i;
        for (i = 0; i < params->copy_size; ++i) {
            to[i] = from[i];
        }
    }
}
