/*
 * si4_conv2d_max_pool_s8.c - CONV_2D followed by MAX_POOL_2D, fused.
 *
 * For every pooled output and channel, the int32 accumulators of the
 * convolution positions the pool window covers are computed, their maximum
 * is taken, and only that maximum is requantized:
 *   out = clamp_pool(clamp_conv(requant(max_i acc_i + bias) + output_offset))
 * This equals TFLM's ConvPerChannel followed by its MaxPool because
 * requantization with a non-negative multiplier, the offset and both clamps
 * are monotonic non-decreasing (given the accumulators do not overflow the
 * int32 left shift, which would be garbage in TFLM too). The convolution
 * output is never stored, and convolution positions no pool window touches
 * (e.g. row/column 10 of an 11x11 map under a 2x2/2 VALID pool) are never
 * computed. Pool window clipping at the borders follows TFLM's MaxPool.
 */
#include "si4_nn.h"

#include "si4_kernel_util.h"
#include "si4_requant.h"

/* Output channels handled per pass over a pool window: each convolution
 * window is located once per block, and the running maxima live in a small
 * int32 array on the stack (256 bytes). */
#define SI4_FUSED_CHANNEL_BLOCK 64

void si4_conv2d_max_pool_s8(const si4_conv2d_params *conv,
                            const si4_pool_params *pool,
                            const int8_t *input,
                            const int8_t *filter,
                            const int32_t *bias,
                            const int32_t *output_multiplier,
                            const int32_t *output_shift,
                            int8_t *output)
{
    const int32_t output_channels = conv->output_channels;
    const int32_t filter_stride = conv->kernel_height * conv->kernel_width * conv->input_channels;
    int32_t pool_y;
    for (pool_y = 0; pool_y < pool->output_height; ++pool_y) {
        /* The pool window, clipped to the convolution output as TFLM's MaxPool clips it. */
        const int32_t conv_y_origin = pool_y * pool->stride_height - pool->pad_top;
        int32_t fy_start;
        int32_t fy_end;
        int32_t pool_x;
        si4_pool_window_range(conv_y_origin, pool->filter_height, pool->input_height, &fy_start, &fy_end);
        for (pool_x = 0; pool_x < pool->output_width; ++pool_x) {
            const int32_t conv_x_origin = pool_x * pool->stride_width - pool->pad_left;
            int32_t fx_start;
            int32_t fx_end;
            int32_t covered;
            int32_t block_start;
            si4_pool_window_range(conv_x_origin, pool->filter_width, pool->input_width, &fx_start, &fx_end);
            covered = (fy_end > fy_start && fx_end > fx_start) ? 1 : 0;
            for (block_start = 0; block_start < output_channels; block_start += SI4_FUSED_CHANNEL_BLOCK) {
                const int32_t remaining = output_channels - block_start;
                const int32_t block_size = remaining < SI4_FUSED_CHANNEL_BLOCK ? remaining : SI4_FUSED_CHANNEL_BLOCK;
                int32_t max_acc[SI4_FUSED_CHANNEL_BLOCK];
                int32_t j;
                int32_t fy;
                for (j = 0; j < block_size; ++j) {
                    max_acc[j] = INT32_MIN;
                }
                for (fy = fy_start; fy < fy_end; ++fy) {
                    int32_t fx;
                    for (fx = fx_start; fx < fx_end; ++fx) {
                        si4_conv2d_window window;
                        int8_t taps[SI4_GATHER_WINDOW_MAX];
                        int32_t gathered;
                        const int8_t *filter_oc = filter + block_start * filter_stride;
                        si4_conv2d_window_at(conv, conv_y_origin + fy, conv_x_origin + fx, &window);
                        gathered = si4_conv2d_gather_window(conv, &window, input, taps);
                        /* Output channels four at a time, then two, sharing input loads. */
                        for (j = 0; j + 3 < block_size; j += 4) {
                            int32_t acc[4] = {0, 0, 0, 0};
                            int32_t k;
                            if (gathered != 0) {
                                si4_dot_s8_quad(filter_oc, filter_stride, taps, gathered, conv->input_offset, acc);
                            } else {
                                si4_conv2d_window_dot_quad(conv, &window, input, filter_oc, filter_stride, acc);
                            }
                            for (k = 0; k < 4; ++k) {
                                if (acc[k] > max_acc[j + k]) {
                                    max_acc[j + k] = acc[k];
                                }
                            }
                            filter_oc += 4 * filter_stride;
                        }
                        for (; j + 1 < block_size; j += 2) {
                            int32_t acc_a = 0;
                            int32_t acc_b = 0;
                            if (gathered != 0) {
                                si4_dot_s8_pair(filter_oc, filter_oc + filter_stride, taps, gathered,
                                                conv->input_offset, &acc_a, &acc_b);
                            } else {
                                si4_conv2d_window_dot_pair(conv, &window, input, filter_oc,
                                                           filter_oc + filter_stride, &acc_a, &acc_b);
                            }
                            if (acc_a > max_acc[j]) {
                                max_acc[j] = acc_a;
                            }
                            if (acc_b > max_acc[j + 1]) {
                                max_acc[j + 1] = acc_b;
                            }
                            filter_oc += 2 * filter_stride;
                        }
                        if (j < block_size) {
                            const int32_t acc =
                                gathered != 0
                                    ? si4_dot_s8_input_offset(filter_oc, taps, gathered, conv->input_offset)
                                    : si4_conv2d_window_dot(conv, &window, input, filter_oc);
                            if (acc > max_acc[j]) {
                                max_acc[j] = acc;
                            }
                        }
                    }
                }
                for (j = 0; j < block_size; ++j) {
                    const int32_t oc = block_start + j;
                    const int32_t quant_index = conv->per_channel ? oc : 0;
                    int32_t result = INT8_MIN; /* TFLM's MaxPool starts from -128 */
                    if (covered) {
                        const int32_t acc = bias != 0 ? max_acc[j] + bias[oc] : max_acc[j];
                        result = si4_requantize_s8(acc, output_multiplier[quant_index], output_shift[quant_index],
                                                   conv->output_offset, conv->activation_min,
                                                   conv->activation_max);
                    }
                    if (result < pool->activation_min) {
                        result = pool->activation_min;
                    }
                    if (result > pool->activation_max) {
                        result = pool->activation_max;
                    }
                    output[block_start + j] = (int8_t)result;
                }
            }
            output += output_channels;
        }
    }
}
