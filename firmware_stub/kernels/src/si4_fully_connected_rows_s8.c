/*
 * si4_fully_connected_rows_s8.c - FULLY_CONNECTED over an input that arrives
 * in parts (a row-streamed schedule feeds it one pooled row at a time).
 *
 * The whole-tensor kernel computes, per output o,
 *   out[o] = clamp(requant(bias[o] + sum_i (f[o][i] + filter_offset) * (in[i] + input_offset)) + output_offset)
 * Here the sum over i is split over calls; int32 addition is associative and
 * every partial sum is bounded by the whole sum's bound, so the total equals
 * the whole-tensor kernel's bit for bit, and the requantization at the end is
 * the same si4_requantize_s8 call (TFLM's FullyConnected / FullyConnectedPerChannel).
 */
#include "si4_nn_stream.h"

#include "si4_requant.h"

void si4_fully_connected_rows_s8_begin(const si4_fully_connected_params *params, int32_t *sums)
{
    int32_t o;
    for (o = 0; o < params->output_size; ++o) {
        sums[o] = 0;
    }
}

void si4_fully_connected_rows_s8(const si4_fully_connected_params *params,
                                            const int8_t *input,
                                            int32_t start,
                                            int32_t count,
                                            const int8_t *filter,
                                            int32_t *sums)
{
    const int32_t input_offset = params->input_offset;
    const int32_t filter_offset = params->filter_offset;
    int32_t o;
    for (o = 0; o < params->output_size; ++o) {
        const int8_t *filter_part = filter + o * params->input_size + start;
        int32_t acc = 0;
        int32_t i;
        for (i = 0; i < count; ++i) {
            acc += ((int32_t)filter_part[i] + filter_offset) * ((int32_t)input[i] + input_offset);
        }
        sums[o] += acc;
    }
}

void si4_fully_connected_rows_s8_finish(const si4_fully_connected_params *params,
                                        const int32_t *sums,
                                        const int32_t *bias,
                                        const int32_t *output_multiplier,
                                        const int32_t *output_shift,
                                        int8_t *output)
{
    int32_t o;
    for (o = 0; o < params->output_size; ++o) {
        const int32_t quant_index = params->per_channel ? o : 0;
        const int32_t total = bias != 0 ? sums[o] + bias[o] : sums[o];
        output[o] = si4_requantize_s8(total, output_multiplier[quant_index], output_shift[quant_index],
                                      params->output_offset, params->activation_min, params->activation_max);
    }
}
