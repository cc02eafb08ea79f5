/*
 * si4_conv2d_few_channels_s8.c (DSP) - CONV_2D over 1 to 4 input channels
 * (first layers: 3x3x3 on an image, 10x4x1 on a spectrogram), for cores
 * with the DSP extension. Same contract and results, bit for bit, as
 * kernels/src/si4_conv2d_few_channels_s8.c (TFLM's reference
 * ConvPerChannel arithmetic).
 *
 * One shape class of the convolution (si4_nn.h): windows of 8 to 64 taps
 * without dilation, two positions against two output channels at a time,
 * about 1.6 to 1.9 instructions per MAC with the requantization and the
 * widening. The generator sends a layer here only when few_fits holds
 * (ops/conv2d.py ports the test); any other shape is computed the compact
 * way (si4_conv2d_each_output_s8).
 */
#include "si4_nn.h"

#if defined(__ARM_FEATURE_DSP)

#include "si4_dsp_util.h"
#include "si4_kernel_util.h"

/* ======================================================================
 * Few-channel im2col (first layers: 1 to 4 input channels, up to 64 taps;
 * si4_dsp_util.h's "few-channel im2col" has the layout and the loops).
 *
 * Tap order of a window: for each kernel row, its whole words of input
 * bytes, each as the pairs SXTAB16 gives (bytes 0 and 2, then 1 and 3);
 * then the rows' leftover bytes (run % 4 each), in order, two to a pair.
 * A window inside the input is widened a word at a time straight from the
 * input; one reaching into the padding is gathered into a byte buffer
 * first. The filter takes the same order once per filter block, with zero
 * taps where the pairs and groups are padded, so any column value there is
 * multiplied by 0. Output channels two at a time, positions two at a time
 * (the last pair of an odd count repeats its position, written twice).
 * ====================================================================== */

#define FEW_MAX_CHANNELS 4
#define FEW_MAX_TAPS 64
#define FEW_MAX_GROUPS 16        /* tap pairs / 2, rounded up */
#define FEW_FILTER_WORDS 512     /* the widened filter block: 2 KB of stack (24 channels of 40 taps) */
#define FEW_BLOCK_CHANNELS 24    /* output channels per filter block at most */

typedef struct {
    int32_t words;    /* whole input words per kernel row */
    int32_t leftover; /* bytes per kernel row after them */
    int32_t groups;   /* groups of two tap pairs per window */
} few_layout;

static void few_layout_init(const si4_conv2d_params *params, few_layout *layout)
{
    const int32_t run = params->kernel_width * params->input_channels;
    const int32_t pairs = params->kernel_height * 2 * (run >> 2) + (params->kernel_height * (run & 3) + 1) / 2;
    layout->words = run >> 2;
    layout->leftover = run & 3;
    layout->groups = (pairs + 1) / 2;
}

static int32_t few_fits(const si4_conv2d_params *params)
{
    few_layout layout;
    if (params->input_channels > FEW_MAX_CHANNELS || params->dilation_height != 1 || params->dilation_width != 1 ||
        si4_dsp_conv_taps(params) < 8 || si4_dsp_conv_taps(params) > FEW_MAX_TAPS) {
        return 0;
    }
    few_layout_init(params, &layout);
    return layout.groups <= FEW_MAX_GROUPS;
}

/* The widened filter block of channels first .. first + count - 1 (a
 * missing partner of the last channel is all zeros): each channel's taps
 * are a window of kernel rows `run` bytes apart, widened like an input
 * window with no offset into the channel's words of its pair. */
static void few_widen_filters(const si4_conv2d_params *params,
                              const few_layout *layout,
                              const int8_t *filter,
                              const int32_t *bias,
                              int32_t first,
                              int32_t count,
                              uint32_t *filters)
{
    const int32_t taps = si4_dsp_conv_taps(params);
    const int32_t pair_words = 2 + 4 * layout->groups;
    si4_dsp_few_widen_job job;
    int32_t channel;
    job.row_step = params->kernel_width * params->input_channels;
    job.rows = params->kernel_height;
    job.words = layout->words;
    job.leftover = layout->leftover;
    job.offset_pair = 0;
    job.input_offset = 0;
    memset(filters, 0, (size_t)(pair_words * ((count + 1) / 2)) * sizeof *filters);
    for (channel = 0; channel < count; ++channel) {
        uint32_t *words = filters + (channel >> 1) * pair_words;
        words[channel & 1] = bias != 0 ? (uint32_t)bias[first + channel] : 0u;
        si4_dsp_few_widen(filter + (first + channel) * taps, words + 2 + 2 * (channel & 1), &job);
    }
}

/* The window of conv position (out_y, out_x) into position `position` (0
 * or 1) of the columns. A window reaching into the padding is gathered
 * first, its padding bytes -input_offset (which widen to 0: the padding
 * contributes nothing, as in TFLM; an int8 zero point keeps it a byte). */
static SI4_DSP_OWN_FRAME void few_widen_padded(const si4_conv2d_params *params,
                                               si4_dsp_few_widen_job *job,
                                               const int8_t *input,
                                               int32_t in_y,
                                               int32_t in_x,
                                               uint32_t *column)
{
    const int32_t channels = params->input_channels;
    const int32_t run = params->kernel_width * channels;
    /* Words, filled a word at a time (the library memset goes byte by byte). */
    uint32_t gathered_words[FEW_MAX_TAPS / 4];
    int8_t *gathered = (int8_t *)gathered_words;
    const uint32_t padding = (uint32_t)(uint8_t)(-params->input_offset) * 0x01010101u;
    const int32_t kx_start = in_x < 0 ? -in_x : 0;
    const int32_t room = params->input_width - in_x;
    const int32_t kx_end = room < params->kernel_width ? room : params->kernel_width;
    const int32_t first = kx_start * channels;
    const int32_t bytes = (kx_end - kx_start) * channels;
    int32_t ky;
    int32_t w;
    for (w = 0; w < (params->kernel_height * run + 3) >> 2; ++w) {
        gathered_words[w] = padding;
    }
    for (ky = 0; ky < params->kernel_height; ++ky) {
        const int32_t y = in_y + ky;
        if (y >= 0 && y < params->input_height && bytes > 0) {
            const int8_t *source = input + (y * params->input_width + in_x + kx_start) * channels;
            int8_t *destination = gathered + ky * run + first;
            int32_t b;
            for (b = 0; b < bytes; ++b) {
                destination[b] = source[b];
            }
        }
    }
    job->row_step = run;
    si4_dsp_few_widen(gathered, column, job);
    job->row_step = params->input_width * channels;
}

static inline void few_widen_position(const si4_conv2d_params *params,
                                      si4_dsp_few_widen_job *job,
                                      const int8_t *input,
                                      int32_t out_y,
                                      int32_t out_x,
                                      uint32_t *column)
{
    const int32_t in_y = out_y * params->stride_height - params->pad_top;
    const int32_t in_x = out_x * params->stride_width - params->pad_left;
    if (in_y >= 0 && in_x >= 0 && in_y + params->kernel_height <= params->input_height &&
        in_x + params->kernel_width <= params->input_width) {
        si4_dsp_few_widen(input + (in_y * params->input_width + in_x) * params->input_channels, column, job);
    } else {
        few_widen_padded(params, job, input, in_y, in_x, column);
    }
}

/* 1 when it ran the convolution (few_fits), 0 to leave it to the others. */
static SI4_DSP_OWN_FRAME int32_t few_channel_conv(const si4_conv2d_params *params,
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
    uint32_t filters[FEW_FILTER_WORDS];
    uint32_t columns[4 * FEW_MAX_GROUPS];
    int32_t acc[2 * FEW_BLOCK_CHANNELS];
    si4_dsp_few_quant quant[FEW_BLOCK_CHANNELS];
    si4_dsp_output out;
    few_layout layout;
    si4_dsp_few_widen_job widen;
    int32_t block_channels;
    int32_t first_channel;
    if (!few_fits(params)) {
        return 0;
    }
    few_layout_init(params, &layout);
    widen.rows = params->kernel_height;
    widen.words = layout.words;
    widen.leftover = layout.leftover;
    widen.offset_pair = si4_dsp_offset_pair(params->input_offset);
    widen.input_offset = params->input_offset;
    widen.row_step = params->input_width * params->input_channels;
    block_channels = 2 * (FEW_FILTER_WORDS / (2 + 4 * layout.groups));
    block_channels = block_channels < FEW_BLOCK_CHANNELS ? block_channels : FEW_BLOCK_CHANNELS;
    si4_dsp_output_init(params->output_offset, params->activation_min, params->activation_max, params->activation_min,
                        params->activation_max, &out);
    memset(columns, 0, sizeof columns);
    for (first_channel = 0; first_channel < output_channels; first_channel += block_channels) {
        const int32_t remaining = output_channels - first_channel;
        const int32_t count = remaining < block_channels ? remaining : block_channels;
        si4_dsp_few_mac_job job;
        int32_t fast = out.low == INT8_MIN && out.high == INT8_MAX;
        int32_t channel;
        int32_t first;
        int32_t out_y = 0;
        int32_t out_x = 0;
        few_widen_filters(params, &layout, filter, bias, first_channel, count, filters);
        for (channel = 0; channel < count && fast; ++channel) {
            const int32_t quant_index = params->per_channel ? first_channel + channel : 0;
            const int32_t bias_value = bias != 0 ? bias[first_channel + channel] : 0;
            const int64_t bound = (int64_t)taps * 255 * 128 + (bias_value < 0 ? -(int64_t)bias_value : bias_value);
            fast = si4_dsp_few_quant_init(output_multiplier[quant_index], output_shift[quant_index],
                                          params->output_offset, bound, &quant[channel]);
        }
        job.acc = acc;
        job.channel_pairs = (count + 1) / 2;
        for (first = 0; first < positions; first += 2) {
            const int32_t real = positions - first < 2 ? 1 : 2;
            int8_t *block_output = output + first * output_channels + first_channel;
            few_widen_position(params, &widen, input, out_y, out_x, columns);
            /* An odd count's last pair widens its position twice. */
            if (real == 2 && ++out_x == params->output_width) {
                out_x = 0;
                ++out_y;
            }
            few_widen_position(params, &widen, input, out_y, out_x, columns + 2);
            if (++out_x == params->output_width) {
                out_x = 0;
                ++out_y;
            }
            job.acc = acc;
            if (layout.groups & 1) {
                si4_dsp_few_mac_odd(filters, columns, columns + 4 * layout.groups, &job);
            } else {
                si4_dsp_few_mac(filters, columns, columns + 4 * layout.groups, &job);
            }
            if (fast) {
                si4_dsp_few_requantize(acc, count, quant, block_output, real == 2 ? output_channels : 0);
            } else {
                si4_dsp_column_quant slow;
                slow.bias = 0; /* in the accumulators */
                slow.output_step = output_channels;
                slow.output_offset = out.output_offset;
                slow.low = out.low;
                slow.high = out.high;
                for (channel = 0; channel < count; ++channel) {
                    const int32_t quant_index = params->per_channel ? first_channel + channel : 0;
                    slow.multiplier = output_multiplier[quant_index];
                    slow.shift = output_shift[quant_index];
                    si4_dsp_requantize_columns(acc + 2 * channel, real, &slow, block_output + channel);
                }
            }
        }
    }
    return 1;
}

void si4_conv2d_few_channels_s8(const si4_conv2d_params *params,
                                const int8_t *input,
                                const int8_t *filter,
                                const int32_t *bias,
                                const int32_t *output_multiplier,
                                const int32_t *output_shift,
                                int8_t *output)
{
    if (!few_channel_conv(params, input, filter, bias, output_multiplier, output_shift, output)) {
        si4_conv2d_each_output_s8(params, input, filter, bias, output_multiplier, output_shift, output);
    }
}

#else /* no DSP extension: the portable kernel */
#include "../src/si4_conv2d_few_channels_s8.c"
#endif
