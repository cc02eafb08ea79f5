/*
 * si4_avg_pool_rows_s8.c - a global AVERAGE_POOL_2D whose input arrives a few
 * rows at a time (depth-first schedules, si4_nn_stream.h).
 *
 * The window is the whole map (no padding), so every output channel is the
 * rounded mean of all its input values: the int32 sums are exact in any order
 * and any split of the map's rows, and the finish rounds them exactly as
 * si4_avg_pool_s8 does (ties away from zero, as TFLM's AveragePool).
 */
#include "si4_nn_stream.h"

void si4_avg_pool_rows_s8(const int8_t *values, int32_t positions, int32_t channels, int32_t *sums)
{
    int32_t position;
    for (position = 0; position < positions; ++position) {
        int32_t c;
        for (c = 0; c < channels; ++c) {
            sums[c] += values[c];
        }
        values += channels;
    }
}

void si4_avg_pool_rows_s8_finish(const si4_pool_params *params, const int32_t *sums, int8_t *output)
{
    const int32_t count = params->input_height * params->input_width;
    int32_t c;
    for (c = 0; c < params->channels; ++c) {
        const int32_t sum = sums[c];
        int32_t average = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
        if (average < params->activation_min) {
            average = params->activation_min;
        }
        if (average > params->activation_max) {
            average = params->activation_max;
        }
        output[c] = (int8_t)average;
    }
}
