/*
 * si4_depthwise_conv2d_pixel_s8.c (DSP) - one output position of a
 * DEPTHWISE_CONV_2D for cores with the DSP extension. Same contract and
 * results, bit for bit, as kernels/src/si4_depthwise_conv2d_pixel_s8.c.
 *
 * No per-call set-up (one call computes one position, so there is nothing to
 * spread it over): with depth multiplier 1 four neighbouring channels share
 * one input word and one filter word per tap; SXTAB16 widens the input with
 * the offset added to both lanes, SXTB16 the filter, and SMLABB / SMLATT
 * accumulate each lane into its own channel's int32 sum (SMLAD would add two
 * channels together). Integer sums are exact in any order, so the sums are
 * the portable kernel's; the requantization is si4_dsp_util.h's form of the
 * portable one (si4_dsp_scale_apply, bit for bit). Other depth
 * multipliers and the channels after the last group of four: the portable
 * loop.
 */
#include "si4_nn_stream.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"
#include "si4_requant.h"

/* Channels first .. end - 1 of the position, any depth multiplier. */
static void pixel_channels(const si4_depthwise_conv2d_params *params,
                           const int8_t *input,
                           const int8_t *filter,
                           const int32_t *bias,
                           const int32_t *output_multiplier,
                           const int32_t *output_shift,
                           int32_t in_y_origin,
                           int32_t in_x_origin,
                           const int32_t range[4],
                           int32_t first,
                           int32_t end,
                           int8_t *output)
{
    int32_t oc;
    for (oc = first; oc < end; ++oc) {
        const int32_t ic = oc / params->depth_multiplier;
        const int32_t quant_index = params->per_channel ? oc : 0;
        int32_t acc = 0;
        int32_t ky;
        for (ky = range[0]; ky < range[1]; ++ky) {
            const int32_t in_y = in_y_origin + params->dilation_height * ky;
            int32_t kx;
            for (kx = range[2]; kx < range[3]; ++kx) {
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

/* Channels c .. c + 3 from their sums, bias included: si4_requantize_s8's arithmetic in the DSP
 * kernels' form (si4_dsp_scale_apply: one 64-bit multiply-add, no branch on the sign). */
static void requantize_group(const si4_depthwise_conv2d_params *params,
                             const int32_t *output_multiplier,
                             const int32_t *output_shift,
                             int32_t c,
                             int32_t acc_0,
                             int32_t acc_1,
                             int32_t acc_2,
                             int32_t acc_3,
                             int8_t *output)
{
    const int32_t sums[4] = {acc_0, acc_1, acc_2, acc_3};
    si4_dsp_output out;
    int32_t lane;
    si4_dsp_output_init(params->output_offset, params->activation_min, params->activation_max,
                        params->activation_min, params->activation_max, &out);
    for (lane = 0; lane < 4; ++lane) {
        const int32_t quant_index = params->per_channel ? c + lane : 0;
        si4_dsp_scale scale;
        si4_dsp_scale_init(output_multiplier[quant_index], output_shift[quant_index], &scale);
        output[lane] = si4_dsp_output_s8(si4_dsp_scale_apply(sums[lane], &scale), &out);
    }
}

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
    const int32_t channels = params->output_channels;
    const uint32_t offset_pair = si4_dsp_offset_pair(params->input_offset);
    const int32_t groups_end = params->depth_multiplier == 1 ? channels - channels % 4 : 0;
    const int32_t in_step = params->dilation_width * channels;
    int32_t range[4];
    int32_t c;
    si4_valid_kernel_range(in_y_origin, params->dilation_height, params->kernel_height, params->input_height,
                           &range[0], &range[1]);
    si4_valid_kernel_range(in_x_origin, params->dilation_width, params->kernel_width, params->input_width,
                           &range[2], &range[3]);
    for (c = 0; c < groups_end; c += 4) {
        /* Four scalar sums (an array would live on the stack) and pointers stepped per tap. */
        int32_t acc_0 = 0;
        int32_t acc_1 = 0;
        int32_t acc_2 = 0;
        int32_t acc_3 = 0;
        int32_t ky;
        for (ky = range[0]; ky < range[1]; ++ky) {
            const int32_t in_y = in_y_origin + params->dilation_height * ky;
            const int32_t first_x = in_x_origin + params->dilation_width * range[2];
            const int8_t *in = input + (in_y * params->input_width + first_x) * channels + c;
            const int8_t *taps = filter + (ky * params->kernel_width + range[2]) * channels + c;
            int32_t kx;
            for (kx = range[2]; kx < range[3]; ++kx) {
                const uint32_t in_word = si4_dsp_load_s8x4(in);
                const uint32_t filter_word = si4_dsp_load_s8x4(taps);
                const int32_t in_02 = __sxtab16(offset_pair, in_word);
                const int32_t in_13 = si4_dsp_sxtab16_ror8(offset_pair, in_word);
                const int32_t filter_02 = __sxtb16(filter_word);
                const int32_t filter_13 = si4_dsp_sxtb16_ror8(filter_word);
                acc_0 = __smlabb(in_02, filter_02, acc_0);
                acc_2 = __smlatt(in_02, filter_02, acc_2);
                acc_1 = __smlabb(in_13, filter_13, acc_1);
                acc_3 = __smlatt(in_13, filter_13, acc_3);
                in += in_step;
                taps += channels;
            }
        }
        if (bias != 0) {
            acc_0 += bias[c];
            acc_1 += bias[c + 1];
            acc_2 += bias[c + 2];
            acc_3 += bias[c + 3];
        }
        requantize_group(params, output_multiplier, output_shift, c, acc_0, acc_1, acc_2, acc_3, output + c);
    }
    pixel_channels(params, input, filter, bias, output_multiplier, output_shift, in_y_origin, in_x_origin, range,
                   groups_end, channels, output);
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_depthwise_conv2d_pixel_s8.c"
#endif
