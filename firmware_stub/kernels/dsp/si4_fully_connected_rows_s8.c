/*
 * si4_fully_connected_rows_s8.c (DSP) - FULLY_CONNECTED over an input that
 * arrives in parts, for cores with the DSP extension. Same contract and
 * results, bit for bit, as kernels/src/si4_fully_connected_rows_s8.c: the
 * partial dot products are the same integer sums, taken four filter rows at
 * a time with the whole-tensor DSP kernel's assembly loop (si4_dsp_dot_4_rows:
 * each input word widened once, SMLAD into four rows), the tail of fewer
 * than four values and the last rows in C. The requantization at the end is
 * the portable one (si4_requantize_s8): it runs once per output.
 */
#include "si4_nn_stream.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"
#include "si4_requant.h"

void si4_fully_connected_rows_s8_begin(const si4_fully_connected_params *params, int32_t *sums)
{
    int32_t o;
    for (o = 0; o < params->output_size; ++o) {
        sums[o] = 0;
    }
}

/* sums[o] += sum_{i < count} (row[i] + filter_offset) * (input[i] + input_offset), plainly. */
static void accumulate_row(const si4_fully_connected_params *params,
                           const int8_t *input,
                           const int8_t *row,
                           int32_t count,
                           int32_t *sum)
{
    int32_t acc = 0;
    int32_t i;
    for (i = 0; i < count; ++i) {
        acc += ((int32_t)row[i] + params->filter_offset) * ((int32_t)input[i] + params->input_offset);
    }
    *sum += acc;
}

void si4_fully_connected_rows_s8(const si4_fully_connected_params *params,
                                            const int8_t *input,
                                            int32_t start,
                                            int32_t count,
                                            const int8_t *filter,
                                            int32_t *sums)
{
    const int32_t input_size = params->input_size;
    const int32_t output_size = params->output_size;
    const int32_t whole = count & ~3;
    int32_t o = 0;
    if (params->filter_offset == 0 && whole > 0) {
        for (; o + 4 <= output_size; o += 4) {
            const int8_t *row_0 = filter + o * input_size + start;
            si4_dsp_rows_job job;
            int32_t r;
            job.words = count >> 2;
            job.offset_pair = si4_dsp_offset_pair(params->input_offset);
            si4_dsp_dot_4_rows(input, row_0, input_size, &job);
            for (r = 0; r < 4; ++r) {
                int32_t tail = job.acc[r];
                accumulate_row(params, input + whole, row_0 + r * input_size + whole, count - whole, &tail);
                sums[o + r] += tail;
            }
        }
    }
    for (; o < output_size; ++o) {
        accumulate_row(params, input, filter + o * input_size + start, count, &sums[o]);
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

#else /* no DSP extension: the portable kernel */
#include "../src/si4_fully_connected_rows_s8.c"
#endif
