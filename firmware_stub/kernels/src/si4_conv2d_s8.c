/*
 * si4_conv2d_s8.c - CONV_2D, int8 activations, int8 per-channel weights.
 *
 * out[y][x][oc] = clamp(requant(bias[oc] + sum_{ky,kx,ic} f[oc][ky][kx][ic] *
 *                       (in[y*sh - pt + ky*dh][x*sw - pl + kx*dw][ic] + input_offset))
 *                       + output_offset)
 * with padding positions skipped. Matches TFLM's
 * reference_integer_ops::ConvPerChannel bit for bit, including its
 * double-rounding MultiplyByQuantizedMultiplier (si4_requant.h).
 *
 * Loop order: output position, groups of four output channels (then a
 * pair, then one), kernel row; the inner loop is a contiguous dot product
 * over a window row (kernel_width * input_channels bytes when
 * dilation_width is 1) feeding four channels.
 */
#include "si4_nn.h"

#include "si4_kernel_util.h"
#include "si4_requant.h"

/* ------------------------------------------------------------------------
 * 1x1 (pointwise) convolutions without padding: each output position reads
 * one input pixel, input_channels contiguous bytes, so the window
 * bookkeeping of the general loop goes: four output channels share each
 * input load (si4_dot_s8_quad), then the last ones one at a time. The sums
 * and the requantization are the general loop's, value for value. */
static int32_t pointwise_applies(const si4_conv2d_params *params)
{
    return params->kernel_height == 1 && params->kernel_width == 1 && params->pad_top == 0 && params->pad_left == 0;
}

static void conv_pointwise(const si4_conv2d_params *params,
                           const int8_t *input,
                           const int8_t *filter,
                           const int32_t *bias,
                           const int32_t *output_multiplier,
                           const int32_t *output_shift,
                           int8_t *output)
{
    const int32_t depth = params->input_channels;
    const int32_t output_channels = params->output_channels;
    const int32_t row_step = params->stride_height * params->input_width * depth;
    const int32_t column_step = params->stride_width * depth;
    int32_t out_y;
    for (out_y = 0; out_y < params->output_height; ++out_y) {
        int32_t out_x;
        for (out_x = 0; out_x < params->output_width; ++out_x) {
            const int8_t *pixel = input + out_y * row_step + out_x * column_step;
            int32_t oc;
            for (oc = 0; oc < output_channels; oc += 4) {
                const int32_t count = output_channels - oc < 4 ? output_channels - oc : 4;
                int32_t acc[4] = {0, 0, 0, 0};
                int32_t k;
                if (count == 4) {
                    si4_dot_s8_quad(filter + oc * depth, depth, pixel, depth, params->input_offset, acc);
                } else {
                    for (k = 0; k < count; ++k) {
                        acc[k] = si4_dot_s8_input_offset(filter + (oc + k) * depth, pixel, depth, params->input_offset);
                    }
                }
                for (k = 0; k < count; ++k) {
                    const int32_t channel = oc + k;
                    const int32_t quant_index = params->per_channel ? channel : 0;
                    const int32_t total = bias != 0 ? acc[k] + bias[channel] : acc[k];
                    *output++ = si4_requantize_s8(total, output_multiplier[quant_index], output_shift[quant_index],
                                                  params->output_offset, params->activation_min,
                                                  params->activation_max);
                }
            }
        }
    }
}
/* ---------------------------------------------------------- end of 1x1 */

void si4_conv2d_s8(const si4_conv2d_params *params,
                   const int8_t *input,
                   const int8_t *filter,
                   const int32_t *bias,
                   const int32_t *output_multiplier,
                   const int32_t *output_shift,
                   int8_t *output)
{
    const int32_t output_channels = params->output_channels;
    const int32_t filter_stride =
        params->kernel_height * params->kernel_width * params->input_channels;
    int32_t out_y;
    if (pointwise_applies(params)) {
        conv_pointwise(params, input, filter, bias, output_multiplier, output_shift, output);
        return;
    }
    for (out_y = 0; out_y < params->output_height; ++out_y) {
        int32_t out_x;
        for (out_x = 0; out_x < params->output_width; ++out_x) {
            si4_conv2d_window window;
            int32_t oc;
            int32_t group = 1;
            si4_conv2d_window_at(params, out_y, out_x, &window);
            /* Output channels four at a time, then two, sharing each input load. */
            for (oc = 0; oc < output_channels; oc += group) {
                int32_t acc[4];
                int32_t k;
                if (oc + 4 <= output_channels) {
                    group = 4;
                    si4_conv2d_window_dot_quad(params, &window, input, filter + oc * filter_stride, filter_stride,
                                               acc);
                } else if (oc + 2 <= output_channels) {
                    group = 2;
                    si4_conv2d_window_dot_pair(params, &window, input, filter + oc * filter_stride,
                                               filter + (oc + 1) * filter_stride, &acc[0], &acc[1]);
                } else {
                    group = 1;
                    acc[0] = si4_conv2d_window_dot(params, &window, input, filter + oc * filter_stride);
                }
                for (k = 0; k < group; ++k) {
                    const int32_t channel = oc + k;
                    const int32_t quant_index = params->per_channel ? channel : 0;
                    const int32_t total = bias != 0 ? acc[k] + bias[channel] : acc[k];
                    *output++ = si4_requantize_s8(total, output_multiplier[quant_index], output_shift[quant_index],
                                                  params->output_offset, params->activation_min,
                                                  params->activation_max);
                }
            }
        }
    }
}
