/*
 * si4_conv2d_each_output_s8.c - CONV_2D, every output one at a time, each
 * tap checked against the input's bounds: exact for any shape (TFLM's
 * reference_integer_ops::ConvPerChannel arithmetic), compact, slow.
 *
 * The fallback of the DSP convolution kernels for what their fast paths do
 * not take: a shape outside a shape-class kernel's class (the generator
 * never sends one: ops/conv2d.py ports their tests) and, in si4_conv2d_s8,
 * windows over 4 * SI4_DSP_COLUMN_GROUPS taps whose kernel rows are not
 * whole words. One copy however many kernels fall back to it.
 */
#include "si4_nn.h"

#include "si4_requant.h"

void si4_conv2d_each_output_s8(const si4_conv2d_params *params,
                               const int8_t *input,
                               const int8_t *filter,
                               const int32_t *bias,
                               const int32_t *output_multiplier,
                               const int32_t *output_shift,
                               int8_t *output)
{
    const int32_t channels = params->input_channels;
    int32_t out_y;
    for (out_y = 0; out_y < params->output_height; ++out_y) {
        int32_t out_x;
        for (out_x = 0; out_x < params->output_width; ++out_x) {
            const int8_t *taps = filter;
            int32_t oc;
            for (oc = 0; oc < params->output_channels; ++oc) {
                const int32_t quant_index = params->per_channel ? oc : 0;
                int32_t acc = 0;
                int32_t ky;
                for (ky = 0; ky < params->kernel_height; ++ky) {
                    const int32_t in_y = out_y * params->stride_height - params->pad_top + ky * params->dilation_height;
                    int32_t kx;
                    for (kx = 0; kx < params->kernel_width; ++kx, taps += channels) {
                        const int32_t in_x =
                            out_x * params->stride_width - params->pad_left + kx * params->dilation_width;
                        const int8_t *pixel;
                        int32_t ic;
                        if (in_y < 0 || in_y >= params->input_height || in_x < 0 || in_x >= params->input_width) {
                            continue; /* padding contributes nothing, as in TFLM */
                        }
                        pixel = input + (in_y * params->input_width + in_x) * channels;
                        for (ic = 0; ic < channels; ++ic) {
                            acc += (int32_t)taps[ic] * ((int32_t)pixel[ic] + params->input_offset);
                        }
                    }
                }
                if (bias != 0) {
                    acc += bias[oc];
                }
                *output++ = si4_requantize_s8(acc, output_multiplier[quant_index], output_shift[quant_index],
                                params->output_offset, params->activation_min, params->activation_max);
            }
        }
    }
}
