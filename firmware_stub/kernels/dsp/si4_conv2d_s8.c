/*
 * si4_conv2d_s8.c (DSP) - CONV_2D of any shape, for cores with the DSP
 * extension. Same contract and results, bit for bit, as
 * kernels/src/si4_conv2d_s8.c (TFLM's reference ConvPerChannel arithmetic).
 *
 * The general member of the convolution's shape classes (si4_nn.h): the
 * generator sends 1x1 layers to si4_conv2d_1x1_s8 and first layers of 1 to
 * 4 input channels to si4_conv2d_few_channels_s8 and one-channel 3x3 layers
 * to si4_conv2d_1ch_3x3_s8, so a model links only the paths its layers
 * take; this file keeps the rest, and computes those shapes too (by the
 * paths below) when called with them.
 *
 * Windows of at most 4 * SI4_DSP_COLUMN_GROUPS taps: four output
 * positions (in raster order) widened into a column block, padding
 * included, then each output channel's filter streamed over it, 13
 * instructions per 16 MACs (si4_dsp_util.h). Larger windows of whole words
 * per kernel row: the same block a few kernel rows at a time. Others: one
 * output at a time (si4_conv2d_each_output_s8.c, the shared fallback).
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"
#include "si4_kernel_util.h"

/* Four output positions per column block; the last block repeats the last
 * position and writes only the real ones. Each channel's requantization
 * constants are derived once per block. */
static SI4_DSP_OWN_FRAME void conv_columns(const si4_conv2d_params *params,
                                           const int8_t *input,
                                           const int8_t *filter,
                                           const int32_t *bias,
                                           const int32_t *output_multiplier,
                                           const int32_t *output_shift,
                                           int8_t *output)
                                           
{
    const int32_t output_channels = params->output_channels;
    const int32_t positions = params->output_height * params->output_width;
    const int32_t taps = si4_dsp_conv_taps(params);
    uint32_t block[8 * SI4_DSP_COLUMN_GROUPS];
    si4_dsp_column_quant quant;
    si4_dsp_output out;
    int32_t first;
    int32_t fast;
    si4_dsp_output_init(params->output_offset, params->activation_min, params->activation_max, params->activation_min,
                        params->activation_max, &out);
    fast = si4_dsp_columns_quant_fast(params, taps, bias, output_multiplier, output_shift, &out);
    quant.output_step = output_channels;
    quant.output_offset = out.output_offset;
    quant.low = out.low;
    quant.high = out.high;
    for (first = 0; first < positions; first += SI4_DSP_COLUMN_POSITIONS) {
        const int32_t real = positions - first < SI4_DSP_COLUMN_POSITIONS ? positions - first : SI4_DSP_COLUMN_POSITIONS;
        int8_t *block_output = output + first * output_channels;
        int32_t channel;
        int32_t index;
        for (index = 0; index < SI4_DSP_COLUMN_POSITIONS; ++index) {
            const int32_t position = first + (index < real ? index : real - 1);
            si4_dsp_widen_column(params, input, position / params->output_width, position % params->output_width,
                                 index, block);
        }
        for (channel = 0; channel < output_channels; ++channel) {
            const int32_t quant_index = params->per_channel ? channel : 0;
            int32_t acc[SI4_DSP_COLUMN_POSITIONS];
            si4_dsp_columns_channel(filter + channel * taps, (output_channels - channel) * taps, block, taps, acc);
            quant.bias = bias != 0 ? bias[channel] : 0;
            quant.multiplier = output_multiplier[quant_index];
            quant.shift = output_shift[quant_index];
            if (fast) {
                si4_dsp_requantize_columns_fast(acc, real, &quant, block_output + channel);
            } else {
                si4_dsp_requantize_columns(acc, real, &quant, block_output + channel);
            }
        }
    }
}

/* Output channels whose accumulators a chunked block keeps (16 bytes each). */
#define CHUNK_CHANNELS 32

/* Windows larger than the column block whose kernel rows are whole words
 * (a 3x3 layer of 64 channels): the window is split into chunks of whole
 * kernel rows that fit the block, and the accumulators of CHUNK_CHANNELS
 * channels are summed over the chunks (integer sums: the same values in any
 * order). Each chunk is widened once per channel group. */
static SI4_DSP_OWN_FRAME void conv_columns_chunked(const si4_conv2d_params *params,
                                                   const int8_t *input,
                                                   const int8_t *filter,
                                                   const int32_t *bias,
                                                   const int32_t *output_multiplier,
                                                   const int32_t *output_shift,
                                                   int8_t *output)
{
    const int32_t output_channels = params->output_channels;
    const int32_t positions = params->output_height * params->output_width;
    const int32_t taps = si4_dsp_conv_taps(params);
    const int32_t run = params->kernel_width * params->input_channels;
    const int32_t chunk_rows = (4 * SI4_DSP_COLUMN_GROUPS) / run;
    uint32_t block[8 * SI4_DSP_COLUMN_GROUPS];
    int32_t acc[CHUNK_CHANNELS][SI4_DSP_COLUMN_POSITIONS];
    si4_dsp_column_quant quant;
    si4_dsp_output out;
    int32_t first;
    int32_t fast;
    si4_dsp_output_init(params->output_offset, params->activation_min, params->activation_max, params->activation_min,
                        params->activation_max, &out);
    fast = si4_dsp_columns_quant_fast(params, taps, bias, output_multiplier, output_shift, &out);
    quant.output_step = output_channels;
    quant.output_offset = out.output_offset;
    quant.low = out.low;
    quant.high = out.high;
    for (first = 0; first < positions; first += SI4_DSP_COLUMN_POSITIONS) {
        const int32_t real = positions - first < SI4_DSP_COLUMN_POSITIONS ? positions - first : SI4_DSP_COLUMN_POSITIONS;
        int8_t *block_output = output + first * output_channels;
        int32_t first_channel;
        for (first_channel = 0; first_channel < output_channels; first_channel += CHUNK_CHANNELS) {
            const int32_t remaining = output_channels - first_channel;
            const int32_t count = remaining < CHUNK_CHANNELS ? remaining : CHUNK_CHANNELS;
            int32_t row_begin;
            int32_t channel;
            int32_t index;
            for (row_begin = 0; row_begin < params->kernel_height; row_begin += chunk_rows) {
                const int32_t row_end =
                    row_begin + chunk_rows < params->kernel_height ? row_begin + chunk_rows : params->kernel_height;
                const int8_t *chunk_filter = filter + first_channel * taps + row_begin * run;
                const int32_t groups = ((row_end - row_begin) * run) >> 2;
                for (index = 0; index < SI4_DSP_COLUMN_POSITIONS; ++index) {
                    const int32_t position = first + (index < real ? index : real - 1);
                    si4_dsp_widen_column_rows(params, input, position / params->output_width,
                                              position % params->output_width, index, row_begin, row_end, block);
                }
                for (channel = 0; channel < count; ++channel) {
                    int32_t part[SI4_DSP_COLUMN_POSITIONS];
                    si4_dsp_dot_columns(chunk_filter + channel * taps, block, groups, part);
                    for (index = 0; index < SI4_DSP_COLUMN_POSITIONS; ++index) {
                        acc[channel][index] = (row_begin == 0 ? 0 : acc[channel][index]) + part[index];
                    }
                }
            }
            for (channel = 0; channel < count; ++channel) {
                const int32_t output_channel = first_channel + channel;
                const int32_t quant_index = params->per_channel ? output_channel : 0;
                quant.bias = bias != 0 ? bias[output_channel] : 0;
                quant.multiplier = output_multiplier[quant_index];
                quant.shift = output_shift[quant_index];
                if (fast) {
                    si4_dsp_requantize_columns_fast(acc[channel], real, &quant, block_output + output_channel);
                } else {
                    si4_dsp_requantize_columns(acc[channel], real, &quant, block_output + output_channel);
                }
            }
        }
    }
}

/* ====================================================================== */

void si4_conv2d_s8(const si4_conv2d_params *params,
                   const int8_t *input,
                   const int8_t *filter,
                   const int32_t *bias,
                   const int32_t *output_multiplier,
                   const int32_t *output_shift,
                   int8_t *output)
{
    if (si4_dsp_columns_fit(params)) {
        conv_columns(params, input, filter, bias, output_multiplier, output_shift, output);
        return;
    }
    if ((params->kernel_width * params->input_channels & 3) == 0 &&
        params->kernel_width * params->input_channels <= 4 * SI4_DSP_COLUMN_GROUPS) {
        conv_columns_chunked(params, input, filter, bias, output_multiplier, output_shift, output);
        return;
    }
    si4_conv2d_each_output_s8(params, input, filter, bias, output_multiplier, output_shift, output);
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_conv2d_s8.c"
#endif
