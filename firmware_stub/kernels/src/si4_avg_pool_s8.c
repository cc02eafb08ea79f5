/*
 * si4_avg_pool_s8.c - AVERAGE_POOL_2D, int8.
 *
 * out = clamp(round(sum / count)) over the window positions inside the input
 * (count excludes padding), rounding as TFLM's
 * reference_integer_ops::AveragePool: (sum + count/2) / count for a positive
 * sum, (sum - count/2) / count otherwise, with C's truncating division, i.e.
 * ties away from zero.
 */
#include "si4_nn.h"

#include "si4_kernel_util.h"

void si4_avg_pool_s8(const si4_pool_params *params, const int8_t *input, int8_t *output)
{
    const int32_t channels = params->channels;
    const int32_t input_row_stride = params->input_width * channels;
    int32_t out_y;
    for (out_y = 0; out_y < params->output_height; ++out_y) {
        const int32_t in_y_origin = out_y * params->stride_height - params->pad_top;
        int32_t fy_start;
        int32_t fy_end;
        int32_t out_x;
        si4_pool_window_range(in_y_origin, params->filter_height, params->input_height, &fy_start, &fy_end);
        for (out_x = 0; out_x < params->output_width; ++out_x) {
            const int32_t in_x_origin = out_x * params->stride_width - params->pad_left;
            int32_t fx_start;
            int32_t fx_end;
            int32_t count;
            int32_t c;
            si4_pool_window_range(in_x_origin, params->filter_width, params->input_width, &fx_start, &fx_end);
            count = (fy_end > fy_start && fx_end > fx_start) ? (fy_end - fy_start) * (fx_end - fx_start) : 0;
            for (c = 0; c < channels; ++c) {
                int32_t sum = 0;
                int32_t average;
                int32_t fy;
                if (count == 0) {
                    /* TFLM's AveragePool rejects a window lying wholly in the
                     * padding; si4tool never emits one. Write 0, not garbage. */
                    *output++ = 0;
                    continue;
                }
                for (fy = fy_start; fy < fy_end; ++fy) {
                    const int8_t *input_row = input + (in_y_origin + fy) * input_row_stride + c;
                    int32_t fx;
                    for (fx = fx_start; fx < fx_end; ++fx) {
                        sum += input_row[(in_x_origin + fx) * channels];
                    }
                }
                average = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                if (average < params->activation_min) {
                    average = params->activation_min;
                }
                if (average > params->activation_max) {
                    average = params->activation_max;
                }
                *output++ = (int8_t)average;
            }
        }
    }
}
