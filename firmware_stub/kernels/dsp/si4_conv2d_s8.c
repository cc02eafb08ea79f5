/*
 * si4_conv2d_s8.c (DSP) - CONV_2D for cores with the DSP extension. Same
 * contract and results, bit for bit, as kernels/src/si4_conv2d_s8.c
 * (TFLM's reference ConvPerChannel arithmetic).
 *
 * One input channel with a 3x3 kernel: each position's window is widened
 * to int16 pairs once and shared by all output channels (five SMLADs per
 * output). Otherwise blocks of 2 output columns x 2 output channels, each
 * input and filter word loaded once per block and used twice
 * (si4_dsp_util.h). Windows reaching into the padding use the portable
 * per-output code.
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"
#include "si4_kernel_util.h"

static int8_t requantize(const si4_conv2d_params *params,
                         int32_t acc,
                         const int32_t *bias,
                         const int32_t *output_multiplier,
                         const int32_t *output_shift,
                         int32_t channel)
{
    const int32_t quant_index = params->per_channel ? channel : 0;
    if (bias != 0) {
        acc += bias[channel];
    }
    return si4_dsp_requantize_s8(acc, output_multiplier[quant_index], output_shift[quant_index],
                                 params->output_offset, params->activation_min, params->activation_max);
}

static void conv_1ch_3x3(const si4_conv2d_params *params,
                         const int8_t *input,
                         const int8_t *filter,
                         const int32_t *bias,
                         const int32_t *output_multiplier,
                         const int32_t *output_shift,
                         int8_t *output)
{
    const int32_t output_channels = params->output_channels;
    uint32_t taps[SI4_DSP_CONV_1CH_CHANNEL_BLOCK][SI4_DSP_PAIRS_3X3];
    int32_t acc[SI4_DSP_CONV_1CH_CHANNEL_BLOCK];
    int32_t first_channel;
    for (first_channel = 0; first_channel < output_channels; first_channel += SI4_DSP_CONV_1CH_CHANNEL_BLOCK) {
        const int32_t count = si4_dsp_widen_taps_block_3x3(filter, first_channel, output_channels, taps);
        const int8_t *block_filter = filter + first_channel * SI4_DSP_TAPS_3X3;
        int8_t *block_output = output + first_channel;
        int32_t channel;
        int32_t out_y;
        for (out_y = 0; out_y < params->output_height; ++out_y) {
            int32_t out_x;
            for (out_x = 0; out_x < params->output_width; ++out_x) {
                si4_dsp_conv_1ch_3x3_position(params, input, block_filter, (const uint32_t(*)[SI4_DSP_PAIRS_3X3])taps,
                                              count, out_y, out_x, 0, acc);
                for (channel = 0; channel < count; ++channel) {
                    block_output[channel] = requantize(params, acc[channel], bias, output_multiplier, output_shift,
                                                       first_channel + channel);
                }
                block_output += output_channels;
            }
        }
    }
}

void si4_conv2d_s8(const si4_conv2d_params *params,
                   const int8_t *input,
                   const int8_t *filter,
                   const int32_t *bias,
                   const int32_t *output_multiplier,
                   const int32_t *output_shift,
                   int8_t *output)
{
    const int32_t output_channels = params->output_channels;
    int32_t out_y;
    if (si4_dsp_is_conv_1ch_3x3(params)) {
        conv_1ch_3x3(params, input, filter, bias, output_multiplier, output_shift, output);
        return;
    }
    for (out_y = 0; out_y < params->output_height; ++out_y) {
        int32_t out_x_0;
        for (out_x_0 = 0; out_x_0 < params->output_width; out_x_0 += 2) {
            /* An odd last column is paired with itself and written once. */
            const int32_t out_x_1 = out_x_0 + 1 < params->output_width ? out_x_0 + 1 : out_x_0;
            int8_t *output_0 = output + (out_y * params->output_width + out_x_0) * output_channels;
            int8_t *output_1 = output + (out_y * params->output_width + out_x_1) * output_channels;
            int32_t channel_0;
            for (channel_0 = 0; channel_0 < output_channels; channel_0 += 2) {
                const int32_t channel_1 = channel_0 + 1 < output_channels ? channel_0 + 1 : channel_0;
                int32_t acc[4];
                si4_dsp_conv_2x2(params, input, filter, out_y, out_x_0, out_y, out_x_1, channel_0, channel_1, acc);
                output_0[channel_0] = requantize(params, acc[0], bias, output_multiplier, output_shift, channel_0);
                output_0[channel_1] = requantize(params, acc[1], bias, output_multiplier, output_shift, channel_1);
                output_1[channel_0] = requantize(params, acc[2], bias, output_multiplier, output_shift, channel_0);
                output_1[channel_1] = requantize(params, acc[3], bias, output_multiplier, output_shift, channel_1);
            }
        }
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_conv2d_s8.c"
#endif
