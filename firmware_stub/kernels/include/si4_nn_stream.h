/*
 * si4_nn_stream.h - kernel entry points for row-streamed (depth-first)
 * schedules (issue 12, `--memory small`).
 *
 * A streamed schedule calls the ordinary kernels of si4_nn.h on bands of
 * rows; these entry points are the two pieces that a band call cannot
 * express: a FULLY_CONNECTED whose input arrives a few values at a time
 * (int32 sums kept between calls, one requantization at the end, identical
 * to si4_fully_connected_s8), the same for a global average pool, the
 * elementwise maximum that joins two partial rows of a max pool, and one
 * position of a depthwise convolution without a whole-layer kernel's per-call
 * set-up.
 */
#ifndef SI4_NN_STREAM_H
#define SI4_NN_STREAM_H

#include <stdint.h>

#include "si4_nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* sums[o] = 0 for every output o: before the first accumulate call. */
void si4_fully_connected_rows_s8_begin(const si4_fully_connected_params *params, int32_t *sums);

/* sums[o] += sum_{i < count} (filter[o][start + i] + filter_offset) * (input[i] + input_offset):
 * input holds the layer's input values start .. start + count - 1. Integer sums are
 * exact in any order, so any split of the input gives the whole-tensor kernel's sums. */
void si4_fully_connected_rows_s8(const si4_fully_connected_params *params,
                                            const int8_t *input,
                                            int32_t start,
                                            int32_t count,
                                            const int8_t *filter,
                                            int32_t *sums);

/* output[o] = clamp(requant(sums[o] + bias[o]) + output_offset), as si4_fully_connected_s8
 * ends; output may not overlap sums. */
void si4_fully_connected_rows_s8_finish(const si4_fully_connected_params *params,
                                        const int32_t *sums,
                                        const int32_t *bias,
                                        const int32_t *output_multiplier,
                                        const int32_t *output_shift,
                                        int8_t *output);

/* Output position (out_y, out_x) of the depthwise layer `params` describes (the whole layer's
 * params and input): its output_channels values, as si4_depthwise_conv2d_s8 computes them,
 * into output. For in-place schedules that compute a layer one pixel at a time. */
void si4_depthwise_conv2d_pixel_s8(const si4_depthwise_conv2d_params *params,
                                   const int8_t *input,
                                   const int8_t *filter,
                                   const int32_t *bias,
                                   const int32_t *output_multiplier,
                                   const int32_t *output_shift,
                                   int32_t out_y,
                                   int32_t out_x,
                                   int8_t *output);

/* sums[c] += values[p * channels + c] for p < positions and c < channels: a few rows of the
 * input of an AVERAGE_POOL_2D whose window is the whole map (a global average pool); the
 * caller zeroes the channels' sums before the first rows. */
void si4_avg_pool_rows_s8(const int8_t *values, int32_t positions, int32_t channels, int32_t *sums);

/* output[c] = clamp(round(sums[c] / (input_height * input_width))), rounding as
 * si4_avg_pool_s8 (ties away from zero); params is the whole pool's. */
void si4_avg_pool_rows_s8_finish(const si4_pool_params *params, const int32_t *sums, int8_t *output);

/* accumulator[i] = max(accumulator[i], values[i]) for i < size: max pooling over int8
 * values is associative, so a pool window may be reduced in parts. */
void si4_maximum_into_s8(const int8_t *values, int8_t *accumulator, int32_t size);

#ifdef __cplusplus
}
#endif

#endif /* SI4_NN_STREAM_H */
