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
        const int32_t conv_y_origin = pool_y * pool->stride_height - pool->pad_top;
        const int32_t fy_start = conv_y_origin < 0 ? -conv_y_origin : 0;
        const int32_t fy_limit = pool->input_height - conv_y_origin;
        const int32_t fy_end = pool->filter_height < fy_limit ? pool->filter_height : fy_limit;
        int32_t pool_x;
        for (pool_x = 0; pool_x < pool->output_width; ++pool_x) {
            const int32_t conv_x_origin = pool_x * pool->stride_width - pool->pad_left;
            const int32_t fx_start = conv_x_origin < 0 ? -conv_x_origin : 0;
            const int32_t fx_limit = pool->input_width - conv_x_origin;
            const int32_t fx_end = pool->filter_width < fx_limit ? pool->filter_width : fx_limit;
            int32_t oc;
            for (oc = 0; oc < output_channels; ++oc) {
                const int8_t *filter_oc = filter + oc * filter_stride;
                const int32_t quant_index = conv->per_channel ? oc : 0;
                int32_t max_acc = INT32_MIN;
                int32_t covered = 0;
                int32_t result;
                int32_t fy;
                for (fy = fy_start; fy < fy_end; ++fy) {
                    int32_t fx;
                    for (fx = fx_start; fx < fx_end; ++fx) {
                        si4_conv2d_window window;
                        int32_t acc;
                        si4_conv2d_window_at(conv, conv_y_origin + fy, conv_x_origin + fx, &window);
                        acc = si4_conv2d_window_dot(conv, &window, input, filter_oc);
                        if (acc > max_acc) {
                            max_acc = acc;
                        }
                        ++covered;
                    }
                }
                if (covered == 0) {
                    /* TFLM's MaxPool starts from -128 and finds nothing. */
                    result = INT8_MIN;
                } else {
                    if (bias != 0) {
                        max_acc += bias[oc];
                    }
                    result = si4_requantize_s8(max_acc, output_multiplier[quant_index],
                                               output_shift[quant_index], conv->output_offset,
                                               conv->activation_min, conv->activation_max);
                }
                if (result < pool->activation_min) {
                    result = pool->activation_min;
                }
                if (result > pool->activation_max) {
                    result = pool->activation_max;
                }
                *output++ = (int8_t)result;
            }
        }
    }
}
