/*
 * si4_depthwise_conv2d_s8.c - DEPTHWISE_CONV_2D, int8, per-channel weights.
 *
 * out[y][x][oc] = clamp(requant(bias[oc] + sum_{ky,kx} f[ky][kx][oc] *
 *                 (in[y*sh - pt + ky*dh][x*sw - pl + kx*dw][oc / depth_multiplier]
 *                  + input_offset)) + output_offset)
 * with padding positions skipped; output channel oc = ic * depth_multiplier + m.
 * Matches TFLM's reference_integer_ops::DepthwiseConvPerChannel bit for bit.
 */
#include "si4_nn.h"

#include "si4_kernel_util.h"
#include "si4_requant.h"

void si4_depthwise_conv2d_s8(const si4_depthwise_conv2d_params *params,
                             const int8_t *input,
                             const int8_t *filter,
                             const int32_t *bias,
                             const int32_t *output_multiplier,
                             const int32_t *output_shift,
                             int8_t *output)
{
    const int32_t input_channels = params->input_channels;
    const int32_t output_channels = params->output_channels;
    const int32_t depth_multiplier = params->depth_multiplier;
    const int32_t input_offset = params->input_offset;
    int32_t out_y;
    for (out_y = 0; out_y < params->output_height; ++out_y) {
        const int32_t in_y_origin = out_y * params->stride_height - params->pad_top;
        int32_t ky_start;
        int32_t ky_end;
        int32_t out_x;
        si4_valid_kernel_range(in_y_origin, params->dilation_height, params->kernel_height,
                               params->input_height, &ky_start, &ky_end);
        for (out_x = 0; out_x < params->output_width; ++out_x) {
            const int32_t in_x_origin = out_x * params->stride_width - params->pad_left;
            int32_t kx_start;
            int32_t kx_end;
            int32_t oc;
            si4_valid_kernel_range(in_x_origin, params->dilation_width, params->kernel_width,
                                   params->input_width, &kx_start, &kx_end);
            for (oc = 0; oc < output_channels; ++oc) {
                const int32_t ic = oc / depth_multiplier;
                const int32_t quant_index = params->per_channel ? oc : 0;
                int32_t acc = 0;
                int32_t ky;
                for (ky = ky_start; ky < ky_end; ++ky) {
                    const int32_t in_y = in_y_origin + params->dilation_height * ky;
                    int32_t kx;
                    for (kx = kx_start; kx < kx_end; ++kx) {
                        const int32_t in_x = in_x_origin + params->dilation_width * kx;
                        const int32_t input_value = input[(in_y * params->input_width + in_x) * input_channels + ic];
                        const int32_t filter_value = filter[(ky * params->kernel_width + kx) * output_channels + oc];
                        acc += filter_value * (input_value + input_offset);
                    }
                }
                if (bias != 0) {
                    acc += bias[oc];
                }
                *output++ = si4_requantize_s8(acc, output_multiplier[quant_index], output_shift[quant_index],
                                              params->output_offset, params->activation_min,
                                              params->activation_max);
            }
        }
    }
}
