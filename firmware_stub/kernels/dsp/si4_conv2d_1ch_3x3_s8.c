/*
 * si4_conv2d_1ch_3x3_s8.c (DSP) - CONV_2D of one input channel with a 3x3
 * window (a first layer on a grey image), for cores with the DSP
 * extension. Same contract and results, bit for bit, as
 * kernels/src/si4_conv2d_1ch_3x3_s8.c (TFLM's reference ConvPerChannel
 * arithmetic).
 *
 * One shape class of the convolution (si4_nn.h): each position's window is
 * widened to int16 pairs once and shared by all output channels (five
 * SMLADs per output). Any other shape (the generator sends none) is
 * computed the compact way (si4_conv2d_each_output_s8).
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"

static SI4_DSP_OWN_FRAME void conv_1ch_3x3(const si4_conv2d_params *params,
                                           const int8_t *input,
                                           const int8_t *filter,
                                           const int32_t *bias,
                                           const int32_t *output_multiplier,
                                           const int32_t *output_shift,
                                           int8_t *output)
{
    const int32_t output_channels = params->output_channels;
    si4_dsp_channel_3x3 channels[SI4_DSP_CONV_1CH_CHANNEL_BLOCK];
    int32_t acc[SI4_DSP_CONV_1CH_CHANNEL_BLOCK];
    si4_dsp_output out;
    int32_t first_channel;
    si4_dsp_output_init(params->output_offset, params->activation_min, params->activation_max, params->activation_min,
                        params->activation_max, &out);
    for (first_channel = 0; first_channel < output_channels; first_channel += SI4_DSP_CONV_1CH_CHANNEL_BLOCK) {
        const int32_t remaining = output_channels - first_channel;
        const int32_t count = remaining < SI4_DSP_CONV_1CH_CHANNEL_BLOCK ? remaining : SI4_DSP_CONV_1CH_CHANNEL_BLOCK;
        const int8_t *block_filter = filter + first_channel * SI4_DSP_TAPS_3X3;
        int8_t *block_output = output + first_channel;
        int32_t channel;
        int32_t out_y;
        si4_dsp_channels_3x3(filter, bias, output_multiplier, output_shift, params->per_channel, first_channel, count,
                             channels);
        for (out_y = 0; out_y < params->output_height; ++out_y) {
            int32_t out_x;
            for (out_x = 0; out_x < params->output_width; ++out_x) {
                si4_dsp_conv_1ch_3x3_position(params, input, block_filter, channels, count, out_y, out_x, 0, acc);
                for (channel = 0; channel < count; ++channel) {
                    block_output[channel] = si4_dsp_output_s8(
                        si4_dsp_scale_apply(acc[channel] + channels[channel].bias, &channels[channel].scale), &out);
                }
                block_output += output_channels;
            }
        }
    }
}

void si4_conv2d_1ch_3x3_s8(const si4_conv2d_params *params,
                           const int8_t *input,
                           const int8_t *filter,
                           const int32_t *bias,
                           const int32_t *output_multiplier,
                           const int32_t *output_shift,
                           int8_t *output)
{
    if (si4_dsp_is_conv_1ch_3x3(params)) {
        conv_1ch_3x3(params, input, filter, bias, output_multiplier, output_shift, output);
    } else {
        si4_conv2d_each_output_s8(params, input, filter, bias, output_multiplier, output_shift, output);
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_conv2d_1ch_3x3_s8.c"
#endif
