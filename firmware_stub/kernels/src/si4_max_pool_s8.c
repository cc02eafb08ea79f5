/*
 * si4_max_pool_s8.c - MAX_POOL_2D, int8.
 *
 * out[y][x][c] = clamp(max over the window positions inside the input of
 * in[y*sh - pt + fy][x*sw - pl + fx][c]), starting from -128, exactly as
 * TFLM's reference_integer_ops::MaxPool (padding positions are ignored).
 */
#include "si4_nn.h"

#include "si4_kernel_util.h"

void si4_max_pool_s8(const si4_pool_params *params, const int8_t *input, int8_t *output)
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
            int32_t c;
            si4_pool_window_range(in_x_origin, params->filter_width, params->input_width, &fx_start, &fx_end);
            for (c = 0; c < channels; ++c) {
                int32_t max_value = INT8_MIN;
                int32_t fy;
                for (fy = fy_start; fy < fy_end; ++fy) {
                    const int8_t *input_row = input + (in_y_origin + fy) * input_row_stride + c;
                    int32_t fx;
                    for (fx = fx_start; fx < fx_end; ++fx) {
                        const int32_t value = input_row[(in_x_origin + fx) * channels];
                        if (value > max_value) {
                            max_value = value;
                        }
                    }
                }
                if (max_value < params->activation_min) {
                    max_value = params->activation_min;
                }
                if (max_value > params->activation_max) {
                    max_value = params->activation_max;
                }
                *output++ = (int8_t)max_value;
            }
        }
    }
}
