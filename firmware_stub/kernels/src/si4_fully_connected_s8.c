/*
 * si4_fully_connected_s8.c - FULLY_CONNECTED, int8.
 *
 * out[o] = clamp(requant(bias[o] + sum_i (f[o][i] + filter_offset) *
 *                (in[i] + input_offset)) + output_offset)
 * Matches TFLM's reference_integer_ops::FullyConnected (per-tensor) and
 * FullyConnectedPerChannel (per_channel = 1) bit for bit, one input row
 * (params->batches of them, as TFLM loops over batches) at a time.
 */
#include "si4_nn.h"

#include "si4_kernel_util.h"
#include "si4_requant.h"

static void fully_connected_row(const si4_fully_connected_params *params,
                               const int8_t *input,
                               const int8_t *filter,
                               const int32_t *bias,
                               const int32_t *output_multiplier,
                               const int32_t *output_shift,
                               int8_t *output)
{
    const int32_t input_size = params->input_size;
    const int32_t input_offset = params->input_offset;
    const int32_t filter_offset = params->filter_offset;
    int32_t o = 0;
    int32_t group = 1;
    for (; o < params->output_size; o += group) {
        int32_t acc[4] = {0, 0, 0, 0};
        int32_t k;
        group = params->output_size - o >= 4 ? 4 : (params->output_size - o >= 2 ? 2 : 1);
        if (filter_offset == 0 && group == 4) {
            /* Symmetric int8 weights (what the TFLite converter emits): four
             * output rows at a time, sharing each input load. */
            si4_dot_s8_quad(filter + o * input_size, input_size, input, input_size, input_offset, acc);
        } else if (filter_offset == 0 && group == 2) {
            si4_dot_s8_pair(filter + o * input_size, filter + (o + 1) * input_size, input, input_size, input_offset,
                            &acc[0], &acc[1]);
        } else {
            for (k = 0; k < group; ++k) {
                const int8_t *filter_row = filter + (o + k) * input_size;
                int32_t i;
                for (i = 0; i < input_size; ++i) {
                    acc[k] += ((int32_t)filter_row[i] + filter_offset) * ((int32_t)input[i] + input_offset);
                }
            }
        }
        for (k = 0; k < group; ++k) {
            const int32_t quant_index = params->per_channel ? o + k : 0;
            const int32_t total = bias != 0 ? acc[k] + bias[o + k] : acc[k];
            output[o + k] = si4_requantize_s8(total, output_multiplier[quant_index], output_shift[quant_index],
                                              params->output_offset, params->activation_min,
                                              params->activation_max);
        }
    }
}

void si4_fully_connected_s8(const si4_fully_connected_params *params,
                            const int8_t *input,
                            const int8_t *filter,
                            const int32_t *bias,
                            const int32_t *output_multiplier,
                            const int32_t *output_shift,
                            int8_t *output)
{
    int32_t batch;
    for (batch = 0; batch < params->batches; ++batch) {
        fully_connected_row(params, input + batch * params->input_size, filter, bias, output_multiplier, output_shift,
                            output + batch * params->output_size);
    }
}
