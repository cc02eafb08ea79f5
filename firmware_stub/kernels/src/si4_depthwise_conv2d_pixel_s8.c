/*
 * si4_depthwise_conv2d_pixel_s8.c - one output position of a DEPTHWISE_CONV_2D.
 *
 * An in-place schedule that computes a depthwise layer one pixel at a time
 * (its ring of pending output then holds a row and a pixel or two instead of
 * two rows) would pay a whole-layer kernel's per-call set-up once per pixel.
 * This entry point takes the whole layer's params and input and computes
 * position (out_y, out_x) only, with the arithmetic of
 * si4_depthwise_conv2d_s8 (TFLM's DepthwiseConvPerChannel), so its bytes are
 * the whole-tensor kernel's bytes at that position.
 */
#include "si4_nn_stream.h"

#include "si4_kernel_util.h"
#include "si4_requant.h"

void si4_depthwise_conv2d_pixel_s8(const si4_depthwise_conv2d_params *params,
                                   const int8_t *input,
                                   const int8_t *filter,
                                   const int32_t *bias,
                                   const int32_t *output_multiplier,
                                   const int32_t *output_shift,
                                   int32_t out_y,
                                   int32_t out_x,
                                   int8_t *output)
{
    const int32_t in_y_origin = out_y * params->stride_height - params->pad_top;
    const int32_t in_x_origin = out_x * params->stride_width - params->pad_left;
    int32_t ky_start;
    int32_t ky_end;
    int32_t kx_start;
    int32_t kx_end;
    int32_t oc;
    si4_valid_kernel_range(in_y_origin, params->dilation_height, params->kernel_height, params->input_height,
                           &ky_start, &ky_end);
    si4_valid_kernel_range(in_x_origin, params->dilation_width, params->kernel_width, params->input_width,
                           &kx_start, &kx_end);
    for (oc = 0; oc < params->output_channels; ++oc) {
        const int32_t ic = oc / params->depth_multiplier;
        const int32_t quant_index = params->per_channel ? oc : 0;
        int32_t acc = 0;
        int32_t ky;
        for (ky = ky_start; ky < ky_end; ++ky) {
            const int32_t in_y = in_y_origin + params->dilation_height * ky;
            int32_t kx;
            for (kx = kx_start; kx < kx_end; ++kx) {
                const int32_t in_x = in_x_origin + params->dilation_width * kx;
                const int32_t input_value = input[(in_y * params->input_width + in_x) * params->input_channels + ic];
                const int32_t filter_value = filter[(ky * params->kernel_width + kx) * params->output_channels + oc];
                acc += filter_value * (input_value + params->input_offset);
            }
        }
        if (bias != 0) {
            acc += bias[oc];
        }
        output[oc] = si4_requantize_s8(acc, output_multiplier[quant_index], output_shift[quant_index],
                                       params->output_offset, params->activation_min, params->activation_max);
    }
}
